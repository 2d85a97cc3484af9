file(REMOVE_RECURSE
  "../lib/libairssys_test_support.a"
)
