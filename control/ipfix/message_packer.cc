// Packing records into messages. See message_packer.h.
#include "control/ipfix/message_packer.h"

#include <algorithm>

namespace aftr::ipfix {

MessagePacker::MessagePacker(uint32_t observation_domain_id, size_t max_message_bytes)
    : observation_domain_id_(observation_domain_id),
      max_message_bytes_(std::min<size_t>(max_message_bytes, 65535)) {}

void MessagePacker::Add(uint16_t template_id, std::span<const uint8_t> record, bool nat_record,
                        uint32_t export_time_s, std::vector<Message>* done) {
  auto set = std::find_if(sets_.begin(), sets_.end(),
                          [&](const auto& s) { return s.first == template_id; });
  size_t needed = record.size() + (set == sets_.end() ? kSetHeaderBytes : 0);
  if (size_ + needed > max_message_bytes_ && pending_records_ > 0) {
    Flush(export_time_s, done);
    set = sets_.end();
    needed = record.size() + kSetHeaderBytes;
  }
  if (set == sets_.end()) {
    sets_.emplace_back(template_id, std::vector<uint8_t>());
    set = sets_.end() - 1;
  }
  set->second.insert(set->second.end(), record.begin(), record.end());
  size_ += needed;
  ++pending_records_;
  if (nat_record) ++pending_nat_records_;
}

void MessagePacker::Flush(uint32_t export_time_s, std::vector<Message>* done) {
  if (pending_records_ == 0) return;
  Message m;
  m.bytes.resize(kMessageHeaderBytes);
  m.bytes.reserve(size_);
  for (const auto& [id, records] : sets_) {
    AppendDataSetHeader(id, records.size(), &m.bytes);
    m.bytes.insert(m.bytes.end(), records.begin(), records.end());
  }
  m.sequence = next_sequence_;
  m.data_records = static_cast<uint32_t>(pending_records_);
  m.nat_records = static_cast<uint32_t>(pending_nat_records_);
  WriteMessageHeader(m.bytes, static_cast<uint16_t>(m.bytes.size()), export_time_s, m.sequence,
                     observation_domain_id_);
  next_sequence_ += m.data_records;  // wraps modulo 2^32
  sets_.clear();
  size_ = kMessageHeaderBytes;
  pending_records_ = 0;
  pending_nat_records_ = 0;
  done->push_back(std::move(m));
}

Message MessagePacker::TemplateMessage(const std::vector<Template>& templates,
                                       const std::vector<Template>& options_templates,
                                       uint32_t export_time_s) const {
  Message m;
  m.templates = true;
  m.bytes.resize(kMessageHeaderBytes);
  if (!templates.empty()) AppendTemplateSet(templates, &m.bytes);
  if (!options_templates.empty()) AppendOptionsTemplateSet(options_templates, &m.bytes);
  m.sequence = next_sequence_;
  WriteMessageHeader(m.bytes, static_cast<uint16_t>(m.bytes.size()), export_time_s, m.sequence,
                     observation_domain_id_);
  return m;
}

}  // namespace aftr::ipfix
