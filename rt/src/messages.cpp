// The runtime's messages: names of the reasons and verdicts they carry.
#include <airssys/rt/messages.hpp>

namespace airssys {

const char* to_string(StopReason r) noexcept {
  switch (r) {
    case StopReason::Normal: return "normal";
    case StopReason::Requested: return "requested";
    case StopReason::Failed: return "failed";
    case StopReason::Escalated: return "escalated";
    case StopReason::Shutdown: return "shutdown";
    case StopReason::NoActor: return "no actor";
  }
  return "unknown";
}

const char* to_string(Health h) noexcept {
  switch (h) {
    case Health::Healthy: return "healthy";
    case Health::Degraded: return "degraded";
    case Health::Failed: return "failed";
  }
  return "unknown";
}

}  // namespace airssys
