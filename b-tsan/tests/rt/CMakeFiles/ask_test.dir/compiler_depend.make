# Empty compiler generated dependencies file for ask_test.
# This may be replaced when dependencies are built.
