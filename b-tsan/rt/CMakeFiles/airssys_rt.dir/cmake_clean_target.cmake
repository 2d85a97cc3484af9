file(REMOVE_RECURSE
  "../lib/libairssys_rt.a"
)
