# Empty compiler generated dependencies file for osl_supervisor_test.
# This may be replaced when dependencies are built.
