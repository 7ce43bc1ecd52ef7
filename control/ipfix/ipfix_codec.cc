// RFC 7011 wire format. See ipfix_codec.h.
#include "control/ipfix/ipfix_codec.h"

#include <algorithm>

namespace aftr::ipfix {

size_t Template::MinRecordBytes() const {
  size_t n = 0;
  for (const FieldSpec& f : fields) n += f.length == kVariableLength ? 1 : f.length;
  return n;
}

void ByteWriter::U16(uint16_t v) {
  U8(static_cast<uint8_t>(v >> 8));
  U8(static_cast<uint8_t>(v));
}

void ByteWriter::U32(uint32_t v) {
  U16(static_cast<uint16_t>(v >> 16));
  U16(static_cast<uint16_t>(v));
}

void ByteWriter::U64(uint64_t v) {
  U32(static_cast<uint32_t>(v >> 32));
  U32(static_cast<uint32_t>(v));
}

void ByteWriter::ShortVariable(std::span<const uint8_t> b) {
  const size_t n = std::min(b.size(), kMaxShortVariableLength);
  U8(static_cast<uint8_t>(n));
  Bytes(b.first(n));
}

void WriteMessageHeader(std::span<uint8_t> out, uint16_t length, uint32_t export_time_s,
                        uint32_t sequence, uint32_t observation_domain_id) {
  std::vector<uint8_t> h;
  h.reserve(kMessageHeaderBytes);
  ByteWriter w(&h);
  w.U16(kVersion);
  w.U16(length);
  w.U32(export_time_s);
  w.U32(sequence);
  w.U32(observation_domain_id);
  std::copy(h.begin(), h.end(), out.begin());
}

void RewriteSequence(std::span<uint8_t> message, uint32_t sequence) {
  for (int i = 0; i < 4; ++i) message[8 + i] = static_cast<uint8_t>(sequence >> (24 - 8 * i));
}

namespace {

void AppendTemplates(uint16_t set_id, std::span<const Template> templates, bool options,
                     std::vector<uint8_t>* out) {
  const size_t start = out->size();
  ByteWriter w(out);
  w.U16(set_id);
  w.U16(0);  // set length, patched below
  for (const Template& t : templates) {
    w.U16(t.id);
    w.U16(static_cast<uint16_t>(t.fields.size()));
    if (options) w.U16(t.scope_count);
    for (const FieldSpec& f : t.fields) {
      w.U16(f.id);
      w.U16(f.length);
    }
  }
  const size_t length = out->size() - start;
  (*out)[start + 2] = static_cast<uint8_t>(length >> 8);
  (*out)[start + 3] = static_cast<uint8_t>(length);
}

}  // namespace

void AppendTemplateSet(std::span<const Template> templates, std::vector<uint8_t>* out) {
  AppendTemplates(kTemplateSetId, templates, false, out);
}

void AppendOptionsTemplateSet(std::span<const Template> templates, std::vector<uint8_t>* out) {
  AppendTemplates(kOptionsTemplateSetId, templates, true, out);
}

void AppendDataSetHeader(uint16_t template_id, size_t records_bytes, std::vector<uint8_t>* out) {
  ByteWriter w(out);
  w.U16(template_id);
  w.U16(static_cast<uint16_t>(kSetHeaderBytes + records_bytes));
}

}  // namespace aftr::ipfix
