"""ROS 2 bags read and written with rosbags (no ROS install): the recorded-bag reader, the
cached triplet dataset that bag fine-tuning trains on, and the synthetic sample bag."""
