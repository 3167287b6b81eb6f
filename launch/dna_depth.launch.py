"""Launch the DNA-Depth depth node, optionally with RViz.

    ros2 launch dna_depth_ros dna_depth.launch.py image:=/camera/image_raw \
        camera_info:=/camera/camera_info checkpoint:=/path/to/model.safetensors rviz:=true

Show every argument with ``ros2 launch dna_depth_ros dna_depth.launch.py --show-args``.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

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
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="Input image topic"),
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
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="dna_depth_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=[
            "-d",
            PathJoinSubstitution([share, "config", "dna_depth.rviz"]),
            "-f",
            LaunchConfiguration("fixed_frame"),
        ],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*arguments, depth_node, rviz])
