#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/wait_for.hpp"

#include <atomic>

using namespace airssys;

namespace {
struct Counter : Actor<int> {
  std::atomic<int>* sum;
  explicit Counter(std::atomic<int>* s) : sum(s) {}
  void on_message(Context<int>&, int& m) override { sum->fetch_add(m); }
};
}  // namespace

TEST_CASE("a spawned actor receives what a plain thread sends") {
  SystemConfig cfg;
  System sys(cfg);
  std::atomic<int> sum{0};
  auto ref = sys.spawn<Counter>(&sum);
  REQUIRE(ref.ok());
  for (int i = 1; i <= 100; ++i) REQUIRE(sys.send(*ref, i).ok());
  REQUIRE(test::wait_for([&] { return sum.load() == 5050; }));
  REQUIRE(sys.shutdown().ok());
}
