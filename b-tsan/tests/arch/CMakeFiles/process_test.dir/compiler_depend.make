# Empty compiler generated dependencies file for process_test.
# This may be replaced when dependencies are built.
