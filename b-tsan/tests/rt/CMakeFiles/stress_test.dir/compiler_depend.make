# Empty compiler generated dependencies file for stress_test.
# This may be replaced when dependencies are built.
