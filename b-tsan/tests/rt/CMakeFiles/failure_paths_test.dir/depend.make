# Empty dependencies file for failure_paths_test.
# This may be replaced when dependencies are built.
