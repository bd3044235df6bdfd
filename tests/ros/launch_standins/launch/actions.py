"""Stand-ins for ``launch.actions``: DeclareLaunchArgument and OpaqueFunction."""


class DeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices


class OpaqueFunction:
    def __init__(self, *, function, args=None, kwargs=None):
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

    def execute(self, context):
        return self.function(context, *self.args, **self.kwargs)
