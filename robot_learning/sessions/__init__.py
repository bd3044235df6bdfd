"""Sessions: the loops behind the verbs (collect, teleop, train, evaluate, fine-tune in twins or online, validate,
the demo), driving the cores in process, free of ROS."""
