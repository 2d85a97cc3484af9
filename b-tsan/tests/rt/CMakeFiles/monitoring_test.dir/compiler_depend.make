# Empty compiler generated dependencies file for monitoring_test.
# This may be replaced when dependencies are built.
