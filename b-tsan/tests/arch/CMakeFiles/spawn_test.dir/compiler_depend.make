# Empty compiler generated dependencies file for spawn_test.
# This may be replaced when dependencies are built.
