# Empty dependencies file for broker_test.
# This may be replaced when dependencies are built.
