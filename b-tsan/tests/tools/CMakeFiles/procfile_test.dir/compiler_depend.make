# Empty compiler generated dependencies file for procfile_test.
# This may be replaced when dependencies are built.
