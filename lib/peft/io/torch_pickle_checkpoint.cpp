#include "peft/io/torch_pickle_checkpoint.h"

#include <cstdio>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "peft/error.h"
#include "peft/io/zip_archive.h"

namespace peft::io {

namespace {

// A value on the unpickler's stack. Containers are shared, as pickle's memo shares them.
struct Node;
using Ref = std::shared_ptr<Node>;
struct Node {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor } kind;
  int64_t i = 0;
  double f = 0;
  std::string s;                             // String, Global ("module.name"), Storage (key)
  std::vector<Ref> items;                    // Tuple, List
  std::vector<std::pair<Ref, Ref>> entries;  // Dict, in insertion order
  DType dtype = DType::F32;                  // Storage, Tensor
  Ref storage;                               // Tensor
  int64_t offset = 0;                        // Tensor: in elements of its storage
  Shape shape, stride;                       // Tensor
};

Ref make(Node::Kind k) {
  auto n = std::make_shared<Node>();
  n->kind = k;
  return n;
}

// The storage classes torch.save names in persistent ids, and their element types.
const std::unordered_map<std::string, DType>& storage_types() {
  static const std::unordered_map<std::string, DType> types = {
      {"torch.HalfStorage", DType::F16},      {"torch.FloatStorage", DType::F32},
      {"torch.BFloat16Storage", DType::BF16}, {"torch.DoubleStorage", DType::F64},
      {"torch.LongStorage", DType::I64},      {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},     {"torch.CharStorage", DType::I8},
      {"torch.ByteStorage", DType::U8},       {"torch.BoolStorage", DType::BOOL}};
  return types;
}

const char* const kOrderedDict = "collections.OrderedDict";
const char* const kRebuildTensor = "torch._utils._rebuild_tensor_v2";
const char* const kRebuildParameter = "torch._utils._rebuild_parameter";

class Unpickler {
 public:
  Unpickler(std::string_view bytes, std::string file, std::string member)
      : p_(bytes), file_(std::move(file)), member_(std::move(member)) {}

  Ref run();

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw FormatError(file_, member_ + " at byte " + std::to_string(op_at_), problem);
  }
  const char* take(size_t n) {
    if (n > p_.size() - pos_) fail("truncated pickle");
    const char* at = p_.data() + pos_;
    pos_ += n;
    return at;
  }
  template <class T>
  T read() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  std::string line() {
    const size_t end = p_.find('\n', pos_);
    if (end == std::string_view::npos) fail("truncated pickle (GLOBAL without newline)");
    std::string s(p_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  Ref pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail("stack underflow");
    Ref r = stack_.back();
    stack_.pop_back();
    return r;
  }
  Ref& top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("no MARK");
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  const Ref& expect(const Ref& r, Node::Kind k, const char* what) const {
    if (!r || r->kind != k) fail(std::string("expected ") + what);
    return r;
  }
  Ref global(const std::string& name);
  Ref reduce(const Ref& callable, const Ref& args);
  Ref persistent(const Ref& pid);

  std::string_view p_;
  size_t pos_ = 0, op_at_ = 0;
  std::string file_, member_;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Ref> memo_;
};

Ref Unpickler::global(const std::string& name) {
  // Only names resolved below; a global is never imported or called by name.
  if (name != kOrderedDict && name != kRebuildTensor && name != kRebuildParameter &&
      !storage_types().count(name))
    fail("refuses global '" + name + "' (only plain tensors and dicts are read)");
  Ref g = make(Node::Kind::Global);
  g->s = name;
  return g;
}

Ref Unpickler::reduce(const Ref& callable, const Ref& args) {
  if (callable->kind != Node::Kind::Global || args->kind != Node::Kind::Tuple) fail("malformed REDUCE");
  const auto& a = args->items;
  const auto is = [&](size_t i, Node::Kind k) { return i < a.size() && a[i]->kind == k; };
  if (callable->s == kOrderedDict) {
    if (!a.empty()) fail("OrderedDict with arguments");
    return make(Node::Kind::Dict);
  }
  if (callable->s == kRebuildParameter) {  // (tensor, requires_grad, hooks)
    if (!is(0, Node::Kind::Tensor)) fail("_rebuild_parameter without a tensor");
    return a[0];
  }
  if (callable->s == kRebuildTensor) {  // (storage, offset, size, stride, requires_grad, hooks[, metadata])
    if (!is(0, Node::Kind::Storage) || !is(1, Node::Kind::Int) || !is(2, Node::Kind::Tuple) ||
        !is(3, Node::Kind::Tuple))
      fail("malformed _rebuild_tensor_v2 arguments");
    Ref t = make(Node::Kind::Tensor);
    t->storage = a[0];
    t->dtype = a[0]->dtype;
    t->offset = a[1]->i;
    for (const Ref& d : a[2]->items) t->shape.push_back(expect(d, Node::Kind::Int, "int size")->i);
    for (const Ref& d : a[3]->items) t->stride.push_back(expect(d, Node::Kind::Int, "int stride")->i);
    if (t->shape.size() != t->stride.size()) fail("tensor size and stride differ in rank");
    return t;
  }
  fail("refuses to call '" + callable->s + "'");
}

Ref Unpickler::persistent(const Ref& pid) {
  // ('storage', <storage class>, key, location, numel)
  const auto& a = pid->items;
  if (pid->kind != Node::Kind::Tuple || a.size() != 5 || a[0]->kind != Node::Kind::String ||
      a[0]->s != "storage" || a[1]->kind != Node::Kind::Global || a[2]->kind != Node::Kind::String ||
      a[4]->kind != Node::Kind::Int)
    fail("unsupported persistent id (expected a torch.save storage)");
  auto type = storage_types().find(a[1]->s);
  if (type == storage_types().end()) fail("'" + a[1]->s + "' is not a storage type");
  Ref s = make(Node::Kind::Storage);
  s->s = a[2]->s;
  s->dtype = type->second;
  s->i = a[4]->i;  // numel
  return s;
}

Ref Unpickler::run() {
  using K = Node::Kind;
  for (;;) {
    op_at_ = pos_;
    const auto op = static_cast<uint8_t>(*take(1));
    switch (op) {
      case 0x80:
        take(1);
        break;  // PROTO
      case 0x95:
        take(8);
        break;  // FRAME
      case '.':
        return pop();  // STOP
      case '(':
        marks_.push_back(stack_.size());
        break;
      case '}':
        stack_.push_back(make(K::Dict));
        break;
      case ']':
        stack_.push_back(make(K::List));
        break;
      case ')':
        stack_.push_back(make(K::Tuple));
        break;
      case 'N':
        stack_.push_back(make(K::None));
        break;
      case 0x88:
      case 0x89: {
        Ref b = make(K::Bool);
        b->i = op == 0x88;
        stack_.push_back(b);
        break;
      }
      case 't': {
        Ref t = make(K::Tuple);
        t->items = pop_mark();
        stack_.push_back(t);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        Ref t = make(K::Tuple);
        t->items.resize(op - 0x84);
        for (size_t i = t->items.size(); i-- > 0;) t->items[i] = pop();
        stack_.push_back(t);
        break;
      }
      case 'a': {
        Ref v = pop();
        expect(top(), K::List, "a list for APPEND")->items.push_back(v);
        break;
      }
      case 'e': {
        auto items = pop_mark();
        auto& list = expect(top(), K::List, "a list for APPENDS")->items;
        list.insert(list.end(), items.begin(), items.end());
        break;
      }
      case 's': {
        Ref v = pop(), k = pop();
        expect(top(), K::Dict, "a dict for SETITEM")->entries.emplace_back(k, v);
        break;
      }
      case 'u': {
        auto items = pop_mark();
        if (items.size() % 2) fail("odd number of items for SETITEMS");
        auto& d = expect(top(), K::Dict, "a dict for SETITEMS")->entries;
        for (size_t i = 0; i < items.size(); i += 2) d.emplace_back(items[i], items[i + 1]);
        break;
      }
      case 'J':
      case 'K':
      case 'M':
      case 0x8a: {
        Ref n = make(K::Int);
        if (op == 'J') n->i = read<int32_t>();
        if (op == 'K') n->i = read<uint8_t>();
        if (op == 'M') n->i = read<uint16_t>();
        if (op == 0x8a) {  // LONG1: little-endian two's complement of n bytes
          const uint8_t len = read<uint8_t>();
          if (len > 8) fail("integer wider than 64 bits");
          uint64_t u = 0;
          const char* b = take(len);
          for (uint8_t k = 0; k < len; ++k) u |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
          if (len > 0 && len < 8 && (static_cast<uint8_t>(b[len - 1]) & 0x80)) u |= ~uint64_t{0} << (8 * len);
          n->i = static_cast<int64_t>(u);
        }
        stack_.push_back(n);
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        uint64_t u = 0;
        const char* b = take(8);
        for (int k = 0; k < 8; ++k) u = (u << 8) | static_cast<uint8_t>(b[k]);
        Ref f = make(K::Float);
        std::memcpy(&f->f, &u, 8);
        stack_.push_back(f);
        break;
      }
      case 'X':
      case 0x8c: {  // BINUNICODE, SHORT_BINUNICODE
        const uint32_t len = op == 'X' ? read<uint32_t>() : read<uint8_t>();
        Ref s = make(K::String);
        s->s.assign(take(len), len);
        stack_.push_back(s);
        break;
      }
      case 'q':
        memo_[read<uint8_t>()] = top();
        break;
      case 'r':
        memo_[read<uint32_t>()] = top();
        break;
      case 0x94:
        memo_[static_cast<uint32_t>(memo_.size())] = top();
        break;  // MEMOIZE
      case 'h':
      case 'j': {
        const uint32_t key = op == 'h' ? read<uint8_t>() : read<uint32_t>();
        auto it = memo_.find(key);
        if (it == memo_.end()) fail("memo key " + std::to_string(key) + " was never stored");
        stack_.push_back(it->second);
        break;
      }
      case 'c': {
        const std::string module = line();
        stack_.push_back(global(module + "." + line()));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Ref name = pop(), module = pop();
        if (name->kind != K::String || module->kind != K::String) fail("malformed STACK_GLOBAL");
        stack_.push_back(global(module->s + "." + name->s));
        break;
      }
      case 'R': {
        Ref args = pop(), callable = pop();
        stack_.push_back(reduce(callable, args));
        break;
      }
      case 'b': {  // BUILD: only OrderedDict's instance state (state_dict's _metadata)
        Ref state = pop();
        if (top()->kind != K::Dict || (state->kind != K::Dict && state->kind != K::None))
          fail("BUILD of something other than a dict");
        break;
      }
      case 'Q': {
        Ref pid = pop();
        stack_.push_back(persistent(pid));
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("unsupported pickle opcode ") + hex);
      }
    }
  }
}

// Plain values (numbers, strings, containers of them) as JSON; nullopt for the rest.
std::optional<nlohmann::json> to_json(const Ref& n) {
  using K = Node::Kind;
  switch (n->kind) {
    case K::None:
      return nlohmann::json(nullptr);
    case K::Bool:
      return nlohmann::json(n->i != 0);
    case K::Int:
      return nlohmann::json(n->i);
    case K::Float:
      return nlohmann::json(n->f);
    case K::String:
      return nlohmann::json(n->s);
    case K::Tuple:
    case K::List: {
      auto a = nlohmann::json::array();
      for (const Ref& x : n->items) {
        auto v = to_json(x);
        if (!v) return std::nullopt;
        a.push_back(*v);
      }
      return a;
    }
    case K::Dict: {
      auto o = nlohmann::json::object();
      for (const auto& [k, x] : n->entries) {
        auto v = to_json(x);
        if (k->kind != K::String || !v) return std::nullopt;
        o[k->s] = *v;
      }
      return o;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

bool TorchPickleCheckpoint::looks_like_torch_zip(const std::filesystem::path& file) {
  const auto ext = file.extension();
  return (ext == ".pt" || ext == ".pth") && ZipArchive::looks_like_zip(file.string());
}

TorchPickleCheckpoint::TorchPickleCheckpoint(const std::filesystem::path& path) : Checkpoint(path.string()) {
  file_ = MappedFile::open(path);
  if (file_->size() >= 2 && file_->data()[0] == 0x80)
    throw FormatError(path_, "",
                      "a legacy (pre-1.6, non-zip) torch.save file; re-save it with a newer torch");
  const ZipArchive zip(file_);
  // torch.save puts everything under one folder, named after the file it first wrote.
  const ZipMember* pkl = nullptr;
  for (const ZipMember& m : zip.members()) {
    const auto slash = m.name.find('/');
    if (slash != std::string::npos && m.name.compare(slash, std::string::npos, "/data.pkl") == 0) pkl = &m;
  }
  if (!pkl) throw FormatError(path_, "", "no <archive>/data.pkl member: not a torch.save file");
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - std::string("data.pkl").size());
  if (const ZipMember* order = zip.find(prefix + "byteorder"); order && zip.bytes(*order) != "little")
    throw FormatError(path_, prefix + "byteorder", "big-endian tensors are not supported");

  Ref root = Unpickler(zip.bytes(*pkl), path_, pkl->name).run();
  if (root->kind != Node::Kind::Dict) throw FormatError(path_, pkl->name, "the pickled object is not a dict");
  Ref state;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != Node::Kind::String) continue;
    if (key->s == "model_state_dict")
      state = value;
    else if (auto v = to_json(value))
      metadata_[key->s] = *v;
  }
  if (!state || state->kind != Node::Kind::Dict)
    throw FormatError(path_, pkl->name, "no 'model_state_dict' dict (an openai-whisper checkpoint has one)");

  for (const auto& [key, value] : state->entries) {
    if (key->kind != Node::Kind::String)
      throw FormatError(path_, "model_state_dict", "a key is not a string");
    const std::string& name = key->s;
    if (value->kind != Node::Kind::Tensor) throw FormatError(path_, "tensor '" + name + "'", "not a tensor");
    const Node& t = *value;
    const ZipMember* data = zip.find(prefix + "data/" + t.storage->s);
    if (!data)
      throw FormatError(path_, "tensor '" + name + "'",
                        "storage member data/" + t.storage->s + " is missing");
    TensorInfo info;
    info.name = name;
    info.dtype = t.dtype;
    info.shape = t.shape;
    const auto numel = shape_numel(t.shape);
    const size_t elem = block_bytes(t.dtype);
    if (!numel)
      throw FormatError(path_, "tensor '" + name + "'", "invalid shape " + shape_to_string(t.shape));
    // Row-major strides, ignoring dimensions of size 1 (their stride is arbitrary).
    int64_t expected = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      if (t.shape[d] != 1 && t.stride[d] != expected)
        throw FormatError(path_, "tensor '" + name + "'",
                          "not contiguous (stride " + shape_to_string(t.stride) + ")");
      expected *= t.shape[d];
    }
    const auto storage_elems = static_cast<uint64_t>(t.storage->i);
    if (t.offset < 0 || storage_elems < static_cast<uint64_t>(t.offset) ||
        storage_elems - static_cast<uint64_t>(t.offset) < *numel || storage_elems * elem > data->size)
      throw FormatError(
          path_, "tensor '" + name + "'",
          "does not fit its storage data/" + t.storage->s + " (" + std::to_string(data->size) + " bytes)");
    info.numel = *numel;
    info.nbytes = *numel * elem;
    offsets_[name] = data->offset + static_cast<uint64_t>(t.offset) * elem;
    add_tensor(std::move(info));
  }
}

TensorData TorchPickleCheckpoint::raw(const std::string& name) const {
  TensorData d;
  d.info = info(name);
  d.data = file_->data() + offsets_.at(name);
  d.owner = file_;
  return d;
}

}  // namespace peft::io
