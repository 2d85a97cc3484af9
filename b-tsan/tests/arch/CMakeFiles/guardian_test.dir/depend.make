# Empty dependencies file for guardian_test.
# This may be replaced when dependencies are built.
