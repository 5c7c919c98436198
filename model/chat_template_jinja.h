// Python Jinja2 value semantics on JSON values, for the native chat template renderer
// (model/chat_template.cc): what `{{ v }}`, `v['key']`, `if v`, `| trim`, `| upper`, `| dictsort` and
// `for x in v` do when the template runs under Python Jinja2 (Hugging Face transformers).
// A Jinja "undefined" (a missing key) is a null pointer.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm::jinja {

using Value = const nlohmann::json*;  // nullptr: undefined

// v['key']: the member of a mapping; undefined for a missing key or a value that is not a mapping.
Value item(Value v, std::string_view key);

bool is_defined(Value v);
bool is_string(Value v);
bool is_mapping(Value v);
bool is_list(Value v);
bool is_none(Value v);  // JSON null (undefined is not none)

// Python truthiness: undefined, null, false, 0, 0.0, "", [] and {} are false.
bool truthy(Value v);

// `{{ v }}`: Python str(v); undefined prints nothing, null "None", booleans "True"/"False", floats as
// Python's repr ("1.0", "1e-05"), lists and dicts as their Python repr.
std::string to_str(Value v);
// Python repr(v) (strings quoted).
std::string repr(const nlohmann::json& v);
// Python repr of a float.
std::string float_repr(double d);

// `| upper` (ASCII letters only).
std::string upper(std::string_view s);
// `| trim`: Python str.strip(), removing the characters for which str.isspace() is true.
std::string strip(std::string_view s);

// `| dictsort`: the (key, value) pairs of a mapping sorted case-insensitively by key (stable).
std::vector<std::pair<std::string, Value>> dictsort(const nlohmann::json& mapping);

// `for x in v`: the elements of a list, the keys of a mapping, the characters of a string; nothing
// for undefined. Throws Error naming `where` for values Python cannot iterate (numbers, None).
std::vector<nlohmann::json> iterate(Value v, const std::string& where);

}  // namespace shardlm::jinja
