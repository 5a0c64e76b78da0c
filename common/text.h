// How dfv shows sizes, durations and metric values to a person, in one place for
// dfvctl and the trainer's console.
#ifndef DFV_COMMON_TEXT_H_
#define DFV_COMMON_TEXT_H_

#include <cstdint>
#include <string>

namespace dfv {

// "0 B", "512 B", "12.3 KiB", "4.0 MiB", "1.2 GiB" (powers of 1024).
std::string FormatBytes(int64_t bytes);

// The two largest units: "45s", "2m31s", "1h02m", "2d04h"; "?" for a
// negative or non-finite value.
std::string FormatDuration(double seconds);

// A loss term or other metric, 4 significant digits: "0.0512", "1.235e+04".
std::string FormatMetricValue(double value);

}  // namespace dfv

#endif  // DFV_COMMON_TEXT_H_
