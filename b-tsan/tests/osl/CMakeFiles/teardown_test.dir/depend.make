# Empty dependencies file for teardown_test.
# This may be replaced when dependencies are built.
