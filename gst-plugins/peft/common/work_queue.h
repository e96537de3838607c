// What an element's streaming thread hands to its inference thread, in stream order:
// data (audio samples, transcript text) and serialized events (caps, segment, gap, EOS).
// The streaming thread never waits on inference: push() only appends. The inference
// thread (the src pad's GstTask) blocks in pop_all() until there is work or the queue is
// set flushing (FLUSH_START, state change to READY), which wakes it so the task can
// pause.
//
// The queue itself is unbounded; each element bounds what it holds by its own policy
// (whisperasr: coalesces audio when inference falls behind; peftsummarize: merges
// pending windows), because only the element knows what may be merged.
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace gstpeft {

struct EventUnref {
  void operator()(GstEvent* e) const { gst_event_unref(e); }
};
using EventPtr = std::unique_ptr<GstEvent, EventUnref>;

template <class Data>
class WorkQueue {
 public:
  struct Item {
    Data data{};     // meaningful when !event
    EventPtr event;  // a serialized event, forwarded (or acted on) in order
  };

  // False (and the item dropped) while flushing.
  bool push(Item item) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (flushing_) return false;
    items_.push_back(std::move(item));
    cond_.notify_all();
    return true;
  }
  bool push_data(Data data) { return push(Item{std::move(data), nullptr}); }
  bool push_event(GstEvent* event) { return push(Item{Data{}, EventPtr(event)}); }

  // Everything queued, waiting until there is something; empty when flushing.
  std::vector<Item> pop_all() {
    std::unique_lock<std::mutex> lock(mutex_);
    cond_.wait(lock, [&] { return flushing_ || !items_.empty(); });
    std::vector<Item> out;
    if (flushing_) return out;
    out.reserve(items_.size());
    for (Item& i : items_) out.push_back(std::move(i));
    items_.clear();
    popped_.notify_all();
    return out;
  }

  // Backpressure for the streaming thread: waits until the sum of measure(data) over the
  // queued data is below `limit`, the queue is flushing, or `timeout` passed. True when
  // below the limit (or flushing).
  template <class F>
  bool wait_until_below(size_t limit, F&& measure, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return popped_.wait_for(lock, timeout, [&] {
      if (flushing_) return true;
      size_t total = 0;
      for (const Item& i : items_)
        if (!i.event) total += measure(i.data);
      return total < limit;
    });
  }

  // Flushing: pushes are refused, what is queued is dropped, a waiting pop returns.
  void set_flushing(bool flushing) {
    std::lock_guard<std::mutex> lock(mutex_);
    flushing_ = flushing;
    if (flushing) items_.clear();
    cond_.notify_all();
    popped_.notify_all();
  }
  bool flushing() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return flushing_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }
  // Sum of f(data) over the queued data items (e.g. samples waiting).
  template <class F>
  size_t sum(F&& f) const {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t total = 0;
    for (const Item& i : items_)
      if (!i.event) total += f(i.data);
    return total;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cond_;    // something was pushed, or flushing
  std::condition_variable popped_;  // the queue was emptied, or flushing
  std::deque<Item> items_;
  bool flushing_ = true;  // until the element starts (READY -> PAUSED)
};

}  // namespace gstpeft
