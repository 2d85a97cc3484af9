# Empty compiler generated dependencies file for executor_test.
# This may be replaced when dependencies are built.
