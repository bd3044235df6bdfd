"""Stand-in for ``launch_ros.actions.Node`` with the real keyword arguments."""


class Node:
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None, parameters=None,
                 remappings=None, ros_arguments=None, arguments=None, output=None, **kwargs):
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        self.executable, self.package, self.name, self.namespace = executable, package, name, namespace
        self.parameters, self.remappings = list(parameters or []), list(remappings or [])
        self.arguments, self.output = list(arguments or []), output
