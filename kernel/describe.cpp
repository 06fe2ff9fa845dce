// Kernel::describe(): one JSON object for humans and tools.

#include <cstdio>
#include <string>

#include "herald/kernel.hpp"
#include "kernel_state.hpp"
#include "reclaim/epoch.hpp"

namespace herald {
namespace {

void append_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void append_field(std::string& out, std::string_view key, std::uint64_t value, bool comma = true) {
  append_string(out, key);
  out += ':';
  out += std::to_string(value);
  if (comma) out += ',';
}

const char* name(Producers p) { return p == Producers::single ? "single" : "multi"; }
const char* name(Overflow o) { return o == Overflow::keep_latest ? "keep_latest" : "drop_newest"; }

}  // namespace

std::string Kernel::describe() const {
  const KernelStats totals = stats();
  const detail::KernelState& s = *state_;
  std::string out = "{\"options\":{";
  append_field(out, "max_handles", s.options.max_handles);
  append_field(out, "max_subscription_capacity", s.options.max_subscription_capacity);
  append_field(out, "memory_limit", s.options.memory_limit, false);
  out += "},\"handles\":[";
  {
    bool first = true;
    const std::uint32_t used = s.table.used_slots();
    for (std::uint32_t slot = 0; slot < used; ++slot) {
      // Each slot's lock in turn: its core, list and records stay allocated while we read them.
      const detail::HandleTable::Locked held = s.table.lock_used_at(slot);
      const detail::HandleCore* core = held.core();
      if (core == nullptr) continue;
      if (!first) out += ',';
      first = false;
      const HandleOptions& o = core->options();
      const HandleStats h = core->stats();
      out += '{';
      append_field(out, "handle", Handle::make(core->index(), core->generation()).raw());
      out += "\"hint\":";
      append_string(out, o.debug_hint);
      out += ",\"producers\":\"";
      out += name(o.producers);
      out += "\",";
      append_field(out, "max_waiters", o.max_waiters);
      append_field(out, "max_subscribers", o.max_subscribers);
      append_field(out, "seq", h.notifications);
      append_field(out, "waiters", h.waiters);
      append_field(out, "delivered", h.delivered);
      append_field(out, "dropped", h.dropped);
      out += "\"subscriptions\":[";
      if (const detail::SubscriberList* subs = core->subscribers()) {
        for (std::uint32_t i = 0; i < subs->count; ++i) {
          const detail::SubscriptionRecord& record = *subs->records[i];
          const detail::SubscriptionRing& r = record.ring;
          if (i != 0) out += ',';
          out += "{\"hint\":";
          append_string(out, record.hint());
          out += ',';
          append_field(out, "capacity", r.capacity());
          out += "\"overflow\":\"";
          out += name(r.overflow());
          out += "\",";
          append_field(out, "size", r.size());
          append_field(out, "dropped", r.dropped(), false);
          out += '}';
        }
      }
      out += "]}";
    }
  }
  out += "],\"totals\":{";
  append_field(out, "live_handles", totals.live_handles);
  append_field(out, "notifications", totals.notifications);
  append_field(out, "rejected", totals.rejected);
  append_field(out, "delivered", totals.delivered);
  append_field(out, "dropped", totals.dropped);
  append_field(out, "memory_used", totals.memory_used, false);
  out += "}}";
  return out;
}

}  // namespace herald
