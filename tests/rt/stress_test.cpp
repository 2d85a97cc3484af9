// Concurrent stress tests of the runtime's lock-free building blocks, sized
// to finish quickly under TSan (`make sanitize` runs them there).

#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/name_table.hpp>
#include <airssys/rt/detail/pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace airssys;

namespace {
constexpr int kThreads = 4;
}

TEST_CASE("the index stack never loses or duplicates an index under concurrent pop and push") {
  constexpr std::uint32_t kCount = 64;
  constexpr int kRounds = 20000;
  std::vector<std::atomic<std::uint32_t>> links(kCount);
  detail::IndexStack stack;
  stack.init(links.data(), kCount, true);
  // owner[i] flips 0 -> 1 when popped and back when pushed: a double pop
  // shows up as a failed flip.
  std::vector<std::atomic<int>> owner(kCount);
  std::atomic<int> double_owned{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::uint32_t held[8];
      for (int r = 0; r < kRounds; ++r) {
        int n = 0;
        for (; n < 8; ++n) {
          if (!stack.pop(held[n])) break;
          int expected = 0;
          if (!owner[held[n]].compare_exchange_strong(expected, 1)) double_owned.fetch_add(1);
        }
        for (int k = 0; k < n; ++k) {
          owner[held[k]].store(0);
          stack.push(held[k]);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(double_owned.load() == 0);
  std::set<std::uint32_t> seen;
  std::uint32_t i;
  while (stack.pop(i)) REQUIRE(seen.insert(i).second);
  REQUIRE(seen.size() == kCount);
}

TEST_CASE("the MPSC queue delivers every node, FIFO per producer, under concurrent pushes") {
  constexpr int kPerProducer = 50000;
  struct Item {
    detail::Node node;
    int producer;
    int seq;
  };
  std::vector<Item> items(kThreads * kPerProducer);
  detail::Node stub;
  std::atomic<detail::Node*> tail{&stub};
  detail::Node* head = &stub;
  std::vector<std::thread> producers;
  for (int p = 0; p < kThreads; ++p) {
    producers.emplace_back([&, p] {
      for (int s = 0; s < kPerProducer; ++s) {
        Item& it = items[p * kPerProducer + s];
        it.producer = p;
        it.seq = s;
        detail::mpsc_push(tail, &it.node);
      }
    });
  }
  std::vector<int> next(kThreads, 0);
  int received = 0, out_of_order = 0;
  while (received < kThreads * kPerProducer) {
    detail::Node* n = detail::mpsc_pop(head, tail, &stub);
    if (n == nullptr) continue;
    // node is the first member of Item
    auto* it = reinterpret_cast<Item*>(n);
    if (it->seq != next[it->producer]) ++out_of_order;
    next[it->producer] = it->seq + 1;
    ++received;
  }
  for (auto& t : producers) t.join();
  REQUIRE(out_of_order == 0);
  REQUIRE(detail::mpsc_pop(head, tail, &stub) == nullptr);
  REQUIRE(tail.load() == head);  // drained: nothing half-pushed either
}

TEST_CASE("name table lookups see only complete entries while writers insert and erase") {
  detail::NameTable table;
  table.init(64);
  std::vector<detail::Name> names;
  for (int i = 0; i < 32; ++i) names.push_back(*detail::Name::make("name-" + std::to_string(i), "test"));
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::atomic<long> found{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        for (int i = 0; i < 32; ++i) {
          detail::NameTable::Found f{};
          if (table.find(names[i], f)) {
            found.fetch_add(1);
            // Each name i is only ever inserted with value i and tag i+1.
            if (f.value != static_cast<std::uint64_t>(i) || f.tag != static_cast<std::uintptr_t>(i + 1))
              wrong.fetch_add(1);
          }
        }
      }
    });
  }
  for (int round = 0; round < 2000; ++round) {
    for (int i = 0; i < 32; ++i) {
      auto r = table.insert(names[i], static_cast<std::uint64_t>(i), static_cast<std::uintptr_t>(i + 1), nullptr);
      REQUIRE(r.ok());
    }
    for (int i = 0; i < 32; ++i) {
      detail::NameTable::Found f{};
      REQUIRE(table.find(names[i], f));
      REQUIRE(table.erase(f.index, f.value));
    }
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  REQUIRE(wrong.load() == 0);
  REQUIRE(table.size() == 0);
}
