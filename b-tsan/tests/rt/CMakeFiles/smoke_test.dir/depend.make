# Empty dependencies file for smoke_test.
# This may be replaced when dependencies are built.
