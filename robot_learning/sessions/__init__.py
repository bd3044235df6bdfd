"""Sessions: collect, fine-tune, validate — loops that drive the cores, free of ROS."""
