# Empty compiler generated dependencies file for rt_process_test.
# This may be replaced when dependencies are built.
