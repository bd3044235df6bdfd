"""What every node of the stack shares: QoS profiles, typed parameter declaration, and a ``main`` that exits
with one clear line on bad parameters instead of a traceback, and non-zero when a callback or a worker thread
raises (``ros2 launch`` then reports the process as died, instead of a node that looks alive and does nothing).

Nodes follow ros2/demos: a thin ``Node`` subclass whose constructor only declares and validates parameters,
a ``configure()`` step that creates the hardware (twin, cameras, episode store, checkpoint) and can fail
with a clear message, and a ``main()`` that spins. ``<node> --help`` prints the parameter table without
starting ROS, so ``install/manip_stack/lib/manip_stack/<node> --help`` checks an installed executable.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.task import Future

from ros_support.params import NodeParams, ParameterError, help_text, param_infos, validate

P = TypeVar("P", bound=NodeParams)

# Cameras and clouds: best effort, keep the newest few (realsense-ros' default for images).
SENSOR_QOS = qos_profile_sensor_data
# Commands and robot state: every message matters and a late joiner must not get stale ones.
COMMAND_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
STATE_QOS = COMMAND_QOS
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)

_ROS_TYPES = {
    "bool": Parameter.Type.BOOL,
    "int": Parameter.Type.INTEGER,
    "double": Parameter.Type.DOUBLE,
    "string": Parameter.Type.STRING,
    "string_array": Parameter.Type.STRING_ARRAY,
    "double_array": Parameter.Type.DOUBLE_ARRAY,
}


def declare_parameters(node: Node, model: type[P]) -> P:
    """Declare every field of ``model`` as a ROS parameter (its ROS type, default and description in the
    descriptor), then build the typed model from the declared values at once.

    Required parameters and empty-list defaults are declared uninitialised (a typed ``Parameter.Type``), since
    rclpy cannot infer a type from ``[]``. Raises :class:`ParameterError` naming the node and every bad or
    missing value.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for info in param_infos(model):
        descriptor = ParameterDescriptor(
            name=info.name, type=_ROS_TYPES[info.kind].value, description=info.description, read_only=info.read_only
        )
        uninitialised = info.required or info.default == []
        default = _ROS_TYPES[info.kind] if uninitialised else info.default
        try:
            param = node.declare_parameter(info.name, default, descriptor)
        except ParameterException as exc:  # an override of the wrong type, from YAML or the command line
            problems.append(f"parameter {info.name}: {exc}")
            continue
        if param.type_ != Parameter.Type.NOT_SET:
            values[info.name] = list(param.value) if info.kind.endswith("_array") else param.value
    typed = None
    try:
        typed = validate(model, values, node=node.get_name())
    except ParameterError as exc:
        problems.append(str(exc).removeprefix(f"{node.get_name()}: "))
    if problems or typed is None:
        raise ParameterError(f"{node.get_name()}: " + "; ".join(problems))
    return typed


def dynamic_parameter_guard(current: Callable[[], P], apply: Callable[[P], None]):
    """A set-parameters callback (ros2/demos ``set_parameters_callback``): validates the node's model
    (``current()``) with the new values of its parameters and hands the new typed model to ``apply``;
    read-only ones are refused by rclpy itself."""

    def callback(params: list[Parameter]) -> SetParametersResult:
        now = current()
        names = set(type(now).model_fields)
        update = {p.name: p.value for p in params if p.name in names}
        if not update:
            return SetParametersResult(successful=True)
        try:
            new = validate(type(now), {**now.model_dump(), **update}, node=type(now).__name__)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc).split(": ", 1)[-1].removeprefix("parameter "))
        if new is not None:
            apply(new)
        return SetParametersResult(successful=True)

    return callback


def wants_help(argv: Sequence[str]) -> bool:
    """``-h``/``--help`` before any ``--ros-args``."""
    user = list(argv[1:])
    if "--ros-args" in user:
        user = user[: user.index("--ros-args")]
    return "-h" in user or "--help" in user


def report_error(name: str, what: str, error: BaseException) -> None:
    """One line saying what failed, then the traceback, on stderr (what ``ros2 launch`` prints for the node)."""
    print(f"[{name}] error: {what}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    traceback.print_exception(error, file=sys.stderr)
    sys.stderr.flush()


class WorkerWatch:
    """While installed, the first uncaught exception of any thread (the twin's render loop, a camera reader, the
    policy's inference worker) is reported and completes :attr:`failed`, which ends the spin.

    Why: Python only prints a dying thread's traceback; the process, and so the node on the graph, stays up
    publishing nothing. A node that cannot do its job must exit so that launch, and the operator, see it.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed = Future()
        self._previous = threading.excepthook

    def __enter__(self) -> WorkerWatch:
        self._previous = threading.excepthook
        threading.excepthook = self._hook
        return self

    def __exit__(self, *exc: object) -> None:
        threading.excepthook = self._previous

    def _hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        thread = args.thread.name if args.thread is not None else "?"
        report_error(self.name, f"worker thread {thread!r} died", args.exc_value)
        if not self.failed.done():
            self.failed.set_result(args.exc_value)  # wakes the executor (thread-safe)


def run_node(
    factory: Callable[[], Node],
    *,
    name: str,
    summary: str,
    params: type[NodeParams],
    args: Sequence[str] | None = None,
    threads: int = 1,
) -> int:
    """Entry point shared by every node: ``--help``; init; build and ``configure()``; spin; clean shutdown.

    A :class:`ParameterError` or any ``ValueError``/``KeyError``/``OSError`` (a missing file, device or library)
    raised while building or configuring is printed as one line on stderr and the process exits with status 2
    (ros2 launch shows the line). An exception in a callback or in any worker thread while spinning is printed
    with its traceback, the node is closed and the process exits with status 1.
    """
    argv = list(sys.argv if args is None else args)
    if wants_help(argv):
        print(help_text(name, summary, params))
        return 0
    rclpy.init(args=argv)
    node: Node | None = None
    status = 0
    with WorkerWatch(name) as watch:
        try:
            try:
                node = factory()
                configure = getattr(node, "configure", None)
                if configure is not None:
                    configure()
            except (ParameterError, ValueError, KeyError, OSError) as exc:
                print(f"[{name}] error: {exc}", file=sys.stderr, flush=True)
                return 2
            executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin_until_future_complete(watch.failed)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception as exc:  # a callback raised: the executor hands it to us
            report_error(name, "callback raised", exc)
            status = 1
        finally:
            if node is not None:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
                node.destroy_node()
            rclpy.try_shutdown()
        if watch.failed.done():
            status = 1
    return status
