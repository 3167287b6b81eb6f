"""Launch the DNA-Depth depth node, optionally with RViz.

    ros2 launch dna_depth_ros dna_depth.launch.py image:=/camera/image_raw \
        camera_info:=/camera/camera_info checkpoint:=/path/to/model.safetensors rviz:=true

Show every argument with ``ros2 launch dna_depth_ros dna_depth.launch.py --show-args``.
With ``rviz:=true`` and no RViz 2 installed it stops with one error line before starting
anything; when the depth node exits (a start-up error, Ctrl-C) the whole launch stops.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from dna_depth_ros.launch_checks import RVIZ_EXECUTABLE, RVIZ_PACKAGE, rviz_problem
from launch import LaunchDescription

PACKAGE = "dna_depth_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            "checkpoint",
            default_value="",
            description="DNA-Depth .safetensors checkpoint; empty for the one shipped with the package",
        ),
        DeclareLaunchArgument(
            "image",
            default_value="/camera/image_raw",
            description="Raw camera image topic (the node rectifies it with camera_info; image_rect* topics also work)",
        ),
        DeclareLaunchArgument(
            "camera_info", default_value="/camera/camera_info", description="Camera info topic of that image"
        ),
        DeclareLaunchArgument(
            "namespace",
            default_value="",
            description="Namespace of the node (and RViz): outputs appear as <namespace>/depth/image...",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "dna_depth.yaml"]),
            description="Parameter file of the node",
        ),
        DeclareLaunchArgument(
            "device", default_value="auto", description="Inference device: auto, cpu, cuda or cuda:N"
        ),
        DeclareLaunchArgument(
            "rviz", default_value="false", description="Open RViz with depth, coloured depth and cloud"
        ),
        DeclareLaunchArgument(
            "fixed_frame",
            default_value="camera_optical_frame",
            description="RViz fixed frame: the frame_id of the camera images",
        ),
    ]
    image = LaunchConfiguration("image")
    depth_node = Node(
        package=PACKAGE,
        executable="depth_node",
        name="dna_depth",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
            },
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
        output="screen",
        emulate_tty=True,
    )
    rviz_wanted = IfCondition(LaunchConfiguration("rviz"))
    rviz = Node(
        package=RVIZ_PACKAGE,
        executable=RVIZ_EXECUTABLE,
        name="dna_depth_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=[
            "-d",
            PathJoinSubstitution([share, "config", "dna_depth.rviz"]),
            "-f",
            LaunchConfiguration("fixed_frame"),
        ],
        condition=rviz_wanted,
        output="screen",
    )

    def checked_nodes(context):
        # Raising here ends the launch with this one message before any process starts.
        if problem := rviz_problem(rviz_wanted.evaluate(context)):
            raise RuntimeError(problem)
        return [depth_node, rviz]

    stop_with_the_node = RegisterEventHandler(
        OnProcessExit(target_action=depth_node, on_exit=[Shutdown(reason="the depth node exited")])
    )
    return LaunchDescription([*arguments, stop_with_the_node, OpaqueFunction(function=checked_nodes)])
