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

TEST_CASE("an idle worker's spin halves after long waits and grows back after short ones") {
  using detail::next_spin_ns;
  constexpr std::int64_t longest = 50'000;
  // A wait that outlasted spin_before_park: no spin would have caught it.
  REQUIRE(next_spin_ns(longest, 2'000'000, longest) == longest / 2);
  std::int64_t spin = longest;
  for (int i = 0; i < 20; ++i) spin = next_spin_ns(spin, 300'000, longest);
  REQUIRE(spin == 0);
  // A wait that ended within it: a longer spin would have.
  spin = next_spin_ns(spin, 8'000, longest);
  REQUIRE(spin == 1'000);
  REQUIRE(next_spin_ns(spin, 8'000, longest) == 2'000);
  for (int i = 0; i < 10; ++i) spin = next_spin_ns(spin, 8'000, longest);
  REQUIRE(spin == longest);
  // spin_before_park 0: never spins.
  REQUIRE(next_spin_ns(0, 10, 0) == 0);
  REQUIRE(next_spin_ns(0, 0, 0) == 0);
}
