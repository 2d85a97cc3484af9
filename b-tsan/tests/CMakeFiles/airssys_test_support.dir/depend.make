# Empty dependencies file for airssys_test_support.
# This may be replaced when dependencies are built.
