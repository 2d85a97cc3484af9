# Empty compiler generated dependencies file for registry_test.
# This may be replaced when dependencies are built.
