# Empty dependencies file for timer_test.
# This may be replaced when dependencies are built.
