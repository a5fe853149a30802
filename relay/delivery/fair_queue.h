// The jobs waiting in one ready queue, in the order a busy site should see them (issue 16): a
// million-message newsletter must not delay a password reset, and one tenant's backlog must not
// starve another's mail.
//
//   1. Priority class first: every transactional job goes before any normal one, every normal one
//      before any bulk one (queue::Priority, fixed at acceptance by the tenant or the message).
//   2. Within a class, tenants share the site by deficit round robin (Shreedhar and Varghese,
//      1995) with their configured weights: a tenant of weight 3 gets three jobs for each one of
//      a tenant of weight 1 while both have jobs waiting; a tenant alone gets everything.
//   3. Within a tenant, first in, first out.
//
// Push and Pop are O(1) amortised (one hash lookup for the flow); memory is one deque per
// (class, tenant) with jobs waiting, freed when it empties. Shard thread only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "queue/record_format.h"

namespace relay::delivery {

template <typename T>
class FairQueue {
 public:
  // Queues `item` for `tenant` in `priority`'s class; `weight` (at least 1) is the tenant's
  // share, taken from the first item of a flow that was empty.
  void Push(T item, queue::Priority priority, const std::string& tenant, uint32_t weight) {
    Class& c = classes_[2 - queue::PriorityRank(priority)];  // the first class is served first
    auto [it, added] = c.flows.try_emplace(tenant);
    Flow& flow = it->second;
    if (added || flow.items.empty()) {
      flow.weight = weight == 0 ? 1 : weight;
      flow.credit = 0;
      c.active.push_back(&it->first);
    }
    flow.items.push_back(std::move(item));
    ++size_;
  }

  // The next item by the rules above; the queue must not be empty.
  T Pop() {
    for (Class& c : classes_) {
      if (c.active.empty()) continue;
      const std::string* tenant = c.active.front();
      Flow& flow = c.flows.find(*tenant)->second;
      if (flow.credit == 0) flow.credit = flow.weight;  // its turn begins
      T item = std::move(flow.items.front());
      flow.items.pop_front();
      --flow.credit;
      --size_;
      if (flow.items.empty()) {
        c.active.pop_front();
        c.flows.erase(*tenant);  // `tenant` points into the map: erased last
      } else if (flow.credit == 0) {
        c.active.pop_front();  // its turn is over: to the back of the round
        c.active.push_back(tenant);
      }
      return item;
    }
    return T();  // unreachable for a caller that checked empty()
  }

  // Every item, in Pop() order, leaving the queue empty.
  std::vector<T> TakeAll() {
    std::vector<T> all;
    all.reserve(size_);
    while (size_ > 0) all.push_back(Pop());
    return all;
  }

  // Calls f(item) for every item, in no particular order.
  template <typename F>
  void ForEach(F f) const {
    for (const Class& c : classes_) {
      for (const auto& [tenant, flow] : c.flows) {
        for (const T& item : flow.items) f(item);
      }
    }
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Tenants with items waiting, over all classes (a tenant in two classes counts twice).
  size_t flows() const {
    size_t n = 0;
    for (const Class& c : classes_) n += c.flows.size();
    return n;
  }

 private:
  struct Flow {
    std::deque<T> items;
    uint32_t weight = 1;
    uint32_t credit = 0;  // jobs left in its current turn; 0: its turn has not begun
  };
  struct Class {
    // A node map: `active` points at its keys, which must not move when it grows.
    absl::node_hash_map<std::string, Flow> flows;
    std::deque<const std::string*> active;  // the round: flows with items, front is served
  };
  std::array<Class, 3> classes_;
  size_t size_ = 0;
};

}  // namespace relay::delivery
