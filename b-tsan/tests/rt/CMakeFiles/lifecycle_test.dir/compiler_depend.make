# Empty compiler generated dependencies file for lifecycle_test.
# This may be replaced when dependencies are built.
