# Empty compiler generated dependencies file for supervisor_test.
# This may be replaced when dependencies are built.
