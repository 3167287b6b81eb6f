"""The demo's own pieces, without the node: reading the sample bag and the node's point clouds.

The whole demo (``make demo``) starts the depth node and takes minutes; these check, in
seconds, what the demo adds on top of the probe and the core's bag reader.
"""

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from dna_depth_core.data.rosbag.sample_bag import make_sample_bag
from dna_depth_ros.demo import read_bag
from dna_depth_ros.probe import cloud_xyz


def cloud_message(xyz: np.ndarray, big_endian: bool) -> PointCloud2:
    """An organised cloud of ``xyz`` ``(H, W, 3)`` with a padding float after z, in either byte order."""
    height, width, _ = xyz.shape
    padded = np.concatenate([xyz, np.full((height, width, 1), 7.0)], axis=2)
    data = padded.astype(">f4" if big_endian else "<f4").tobytes()
    fields = [PointField(name=name, offset=4 * index, datatype=PointField.FLOAT32, count=1)
              for index, name in enumerate("xyz")]
    return PointCloud2(height=height, width=width, fields=fields, is_bigendian=big_endian, point_step=16,
                       row_step=16 * width, data=data, is_dense=False)


def test_cloud_xyz_reads_either_byte_order():
    xyz = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3) * 0.5 - 2.0
    xyz[1, 2] = np.nan
    for big_endian in (False, True):
        decoded = cloud_xyz(cloud_message(xyz, big_endian))
        assert decoded.dtype == np.float32 and decoded.shape == (2, 3, 3)
        np.testing.assert_array_equal(decoded, xyz)


def test_read_bag_gives_the_replayed_messages_and_ground_truth(tmp_path):
    bag = read_bag(make_sample_bag(tmp_path / "bag", frames=3, height=64, width=96, progress=False))
    assert len(bag.images) == len(bag.camera_infos) == len(bag.depth_gt) == len(bag.stamps_ns) == 3
    assert all(isinstance(raw, bytes) for raw in bag.images + bag.camera_infos)
    assert abs(bag.period - 0.1) < 1e-3  # the sample bag's 10 Hz
    assert np.all(np.diff(bag.stamps_ns) > 0)
    depth = bag.depth_gt[0]
    assert depth.shape == (64, 96) and depth.dtype == np.float32
    assert np.isnan(depth).any() and np.nanmin(depth) > 0  # street sky unknown, the rest metres
