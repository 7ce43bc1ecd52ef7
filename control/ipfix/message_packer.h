// Packs data records into IPFIX messages no larger than a maximum: records of one template
// share one Data Set per message, and each message's sequence number is the count of data
// records before it (RFC 7011 section 3.1), modulo 2^32.
#ifndef AFTR_CONTROL_IPFIX_MESSAGE_PACKER_H_
#define AFTR_CONTROL_IPFIX_MESSAGE_PACKER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "control/ipfix/ipfix_codec.h"

namespace aftr::ipfix {

// One finished message, ready for a transport.
struct Message {
  std::vector<uint8_t> bytes;
  uint32_t sequence = 0;      // as written in the header
  uint32_t data_records = 0;  // every data record in it (NAT and statistics)
  uint32_t nat_records = 0;   // NAT records only
  bool templates = false;     // a template message (no data records)
};

class MessagePacker {
 public:
  // `max_message_bytes` includes the 16-octet header; it must hold the largest record.
  MessagePacker(uint32_t observation_domain_id, size_t max_message_bytes);

  // Adds one record. When it does not fit in the message being built, that message is
  // finished first (stamped `export_time_s`) and appended to `done`.
  void Add(uint16_t template_id, std::span<const uint8_t> record, bool nat_record,
           uint32_t export_time_s, std::vector<Message>* done);
  // Finishes the message being built, if it holds any record.
  void Flush(uint32_t export_time_s, std::vector<Message>* done);

  // A message with the template set and the options template set, numbered with the
  // sequence number of the next data record.
  Message TemplateMessage(const std::vector<Template>& templates,
                          const std::vector<Template>& options_templates,
                          uint32_t export_time_s) const;

  // Sequence number the next finished message will carry.
  uint32_t next_sequence() const { return next_sequence_; }
  void SetNextSequenceForTest(uint32_t sequence) { next_sequence_ = sequence; }
  size_t pending_records() const { return pending_records_; }
  uint32_t observation_domain_id() const { return observation_domain_id_; }

 private:
  uint32_t observation_domain_id_;
  size_t max_message_bytes_;
  uint32_t next_sequence_ = 0;
  // The message being built: one (template id, records) per Data Set, in first-use order.
  std::vector<std::pair<uint16_t, std::vector<uint8_t>>> sets_;
  size_t size_ = kMessageHeaderBytes;
  size_t pending_records_ = 0;
  size_t pending_nat_records_ = 0;
};

}  // namespace aftr::ipfix

#endif  // AFTR_CONTROL_IPFIX_MESSAGE_PACKER_H_
