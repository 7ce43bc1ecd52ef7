#include "control/config/live_config.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/message_differencer.h"

namespace aftr::config {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::util::MessageDifferencer;

// Fields (or whole sub-messages, by prefix) a running aftrd cannot change: the maps are
// sized and pinned, blocks are cut, the ring and listeners are open.
constexpr const char* kNonLive[] = {
    "pin_path",       "tables.",         "port_blocks.port_min", "port_blocks.port_max",
    "port_blocks.block_size", "event_ring_bytes", "log_file", "api.", "metrics.",
    "pcp.enabled", "pcp.listen_addresses", "pcp.port", "pcp.clients_file", "pcp.max_mappings",
    "logging.", "ipfix.", "radius.", "deterministic.",
};

bool FieldEquals(const Message& a, const Message& b, const FieldDescriptor* f) {
  MessageDifferencer d;
  d.set_scope(MessageDifferencer::FULL);
  // Compare just this field: ignore all others.
  const google::protobuf::Descriptor* desc = a.GetDescriptor();
  for (int i = 0; i < desc->field_count(); ++i) {
    if (desc->field(i) != f) d.IgnoreField(desc->field(i));
  }
  return d.Compare(a, b);
}

void Collect(const Message& a, const Message& b, const std::string& prefix,
             std::vector<std::string>* out) {
  const google::protobuf::Descriptor* desc = a.GetDescriptor();
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (FieldEquals(a, b, f)) continue;
    std::string path = absl::StrCat(prefix, f->name());
    if (f->type() == FieldDescriptor::TYPE_MESSAGE && !f->is_repeated()) {
      const google::protobuf::Reflection* ra = a.GetReflection();
      const google::protobuf::Reflection* rb = b.GetReflection();
      Collect(ra->GetMessage(a, f), rb->GetMessage(b, f), path + ".", out);
    } else {
      out->push_back(path);
    }
  }
}

}  // namespace

std::vector<std::string> ChangedFields(const aftr::config::v1::Config& before,
                                       const aftr::config::v1::Config& after) {
  std::vector<std::string> out;
  Collect(before, after, "", &out);
  return out;
}

std::vector<std::string> NonLiveFields(const std::vector<std::string>& changed) {
  std::vector<std::string> out;
  for (const std::string& field : changed) {
    for (const char* fixed : kNonLive) {
      absl::string_view f(fixed);
      if (f.back() == '.' ? absl::StartsWith(field, f) : field == f) {
        out.push_back(field);
        break;
      }
    }
  }
  return out;
}

}  // namespace aftr::config
