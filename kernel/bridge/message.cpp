// The bridge's text formats: redis:// URLs, channel names, and the JSON of one message.

#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>

#include "herald/redis_bridge.hpp"

namespace herald {

namespace {

bool printable_without_space(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// %XX-decodes `s`; false for a malformed escape or a decoded control byte.
bool percent_decode(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const auto byte = static_cast<unsigned char>(hi * 16 + lo);
    if (byte < 0x20 || byte == 0x7f) return false;
    out += static_cast<char>(byte);
    i += 2;
  }
  return true;
}

template <class T>
bool parse_decimal(std::string_view s, T& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

Result<RedisEndpoint> parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (url.size() > 2048 || url.substr(0, kScheme.size()) != kScheme) return Errc::invalid_argument;
  std::string_view rest = url.substr(kScheme.size());
  if (!printable_without_space(rest)) return Errc::invalid_argument;
  RedisEndpoint ep;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) return Errc::invalid_argument;  // user without password
    if (!percent_decode(userinfo.substr(0, colon), ep.user)) return Errc::invalid_argument;
    if (!percent_decode(userinfo.substr(colon + 1), ep.password)) return Errc::invalid_argument;
    if (ep.password.empty()) return Errc::invalid_argument;
  }
  std::string_view hostport = rest, db;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    db = rest.substr(slash + 1);
    if (db.empty()) return Errc::invalid_argument;
  }
  std::string_view host = hostport, port;
  if (!hostport.empty() && hostport.front() == '[') {
    const auto close = hostport.find(']');
    if (close == std::string_view::npos) return Errc::invalid_argument;
    host = hostport.substr(1, close - 1);
    const std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Errc::invalid_argument;
      port = after.substr(1);
      if (port.empty()) return Errc::invalid_argument;
    }
    if (host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
      return Errc::invalid_argument;
  } else if (const auto colon = hostport.find(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
    if (port.empty()) return Errc::invalid_argument;
  }
  if (host.empty() || host.size() > 253) return Errc::invalid_argument;
  if (host.front() != ':' &&
      host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") !=
          std::string_view::npos)
    return Errc::invalid_argument;
  ep.host = std::string(host);
  if (!port.empty()) {
    unsigned value = 0;
    if (!parse_decimal(port, value) || value == 0 || value > 65535) return Errc::invalid_argument;
    ep.port = static_cast<std::uint16_t>(value);
  }
  if (!db.empty()) {
    std::uint32_t value = 0;
    if (!parse_decimal(db, value) || value > 0x7fffffffu) return Errc::invalid_argument;
    ep.db = value;
  }
  return ep;
}

bool valid_channel_name(std::string_view channel) noexcept {
  if (channel.empty() || channel.size() > 256) return false;
  if (!printable_without_space(channel)) return false;
  return channel.find_first_of("*?[]") == std::string_view::npos;
}

std::string format_bridge_message(const BridgeMessage& m) {
  std::string out =
      "{\"seq\":" + std::to_string(m.seq) + ",\"arg\":" + std::to_string(m.arg) + ",\"origin\":\"";
  for (const char c : m.origin) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(u));
      out += buf;
    } else {
      out += c;
    }
  }
  out += "\"}";
  return out;
}

namespace {

/// A strict reader for the flat objects the bridge exchanges.
class FlatJsonReader {
 public:
  explicit FlatJsonReader(std::string_view s) : s_(s) {}

  bool parse(BridgeMessage& m) {
    bool have_seq = false, have_arg = false;
    skip_ws();
    if (!eat('{')) return false;
    skip_ws();
    if (eat('}')) return false;  // seq and arg are required
    for (;;) {
      std::string key;
      skip_ws();
      if (!read_string(key)) return false;
      skip_ws();
      if (!eat(':')) return false;
      skip_ws();
      if (key == "seq") {
        if (have_seq || !read_integer(m.seq)) return false;
        have_seq = true;
      } else if (key == "arg") {
        if (have_arg || !read_integer(m.arg)) return false;
        have_arg = true;
      } else if (key == "origin") {
        if (!read_string(m.origin)) return false;
      } else if (!skip_scalar()) {
        return false;
      }
      skip_ws();
      if (eat(',')) continue;
      if (eat('}')) break;
      return false;
    }
    skip_ws();
    return pos_ == s_.size() && have_seq && have_arg;
  }

 private:
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool read_string(std::string& out) {
    out.clear();
    if (!eat('"')) return false;
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return false;
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return false;
          unsigned v = 0;
          for (int i = 0; i < 4; ++i) {
            const int h = hex_value(s_[pos_++]);
            if (h < 0) return false;
            v = v * 16 + static_cast<unsigned>(h);
          }
          out += v < 0x80 ? static_cast<char>(v) : '?';  // origins are ASCII; others are kept
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  template <class T>
  bool read_integer(T& out) {
    const std::size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return parse_decimal(s_.substr(start, pos_ - start), out);
  }
  bool skip_scalar() {
    if (pos_ < s_.size() && s_[pos_] == '"') {
      std::string ignored;
      return read_string(ignored);
    }
    for (const std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return true;
      }
    }
    const std::size_t start = pos_;
    while (pos_ < s_.size() &&
           (std::string_view("+-.eE0123456789").find(s_[pos_]) != std::string_view::npos))
      ++pos_;
    return pos_ > start;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace

Result<BridgeMessage> parse_bridge_message(std::string_view json) {
  if (json.size() > 4096) return Errc::invalid_argument;
  BridgeMessage m;
  if (!FlatJsonReader(json).parse(m)) return Errc::invalid_argument;
  return m;
}

std::string_view to_string(TaskState s) noexcept {
  switch (s) {
    case TaskState::pending:
      return "pending";
    case TaskState::running:
      return "running";
    case TaskState::completed:
      return "completed";
    case TaskState::failed:
      return "failed";
    case TaskState::timed_out:
      return "timed_out";
    case TaskState::cancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace herald
