# Empty dependencies file for policy_test.
# This may be replaced when dependencies are built.
