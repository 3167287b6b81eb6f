"""ament_python package ``dna_depth_ros``: installs with ``colcon build`` or ``pip install -e .``."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dna_depth_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="DNA-Depth lightweight self-supervised monocular depth for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["dna_depth_core", "dna_depth_core.*", "dna_depth_ros", "dna_depth_ros.*"]),
    package_data={"dna_depth_core": ["assets/*"], "dna_depth_ros": ["*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        # colcon sources it (colcon.pkg): lib/dna_depth_ros, where ros2 run looks, joins PATH.
        (f"share/{PACKAGE}/hook", ["hooks/executables.dsv"]),
    ],
    install_requires=[
        "torch>=2.1",
        "timm>=1.0",
        "safetensors>=0.4",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pillow>=9.1",
        "pyyaml>=6",
        "omegaconf>=2.3",
        "rosbags>=0.10",
        # Imported directly to salvage damaged bags (rosbags needs them too).
        "apsw>=3.40",
        "lz4>=4.0",
        'backports.zstd>=1.0; python_version < "3.14"',
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "tensorboard>=2.14",
    ],
    extras_require={
        "test": ["pytest>=7", "fvcore>=0.1.5"],
        "export": ["onnx>=1.15", "onnxruntime>=1.17", "onnxscript>=0.1", "openvino>=2024.0", "nncf>=2.12"],
        # CUDA machines only (benchmarks/gpu_check.sh): onnxruntime-gpu replaces onnxruntime.
        "gpu": ["onnxruntime-gpu>=1.17", "tensorrt>=10.0"],
    },
    entry_points={
        "console_scripts": [
            "dna-depth = dna_depth_core.cli:main",
            "depth_node = dna_depth_ros.depth_node:main",
            "bag_finetune = dna_depth_ros.bag_finetune:main",
        ],
    },
)
