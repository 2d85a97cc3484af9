#pragma once
// Forward declarations of the runtime's public types, for headers that
// name them without needing their definitions.

#include <cstdint>

namespace airssys {

class Error;
enum class Errc : std::uint8_t;
struct ExitStatus;

// actor_ref.hpp
struct ActorId;
template <class M>
struct ActorRef;

// messages.hpp
enum class StopReason : std::uint8_t;
enum class Health : std::uint8_t;
struct Down;
template <class Rep>
struct ReplyTo;
template <class Rep>
struct Reply;
struct Started;
struct HealthReport;
struct ProcessExited;

// actor.hpp, context.hpp
enum class ErrorAction : std::uint8_t;
template <class M>
class Actor;
template <class M>
class Context;

// config.hpp
enum class IdleStrategy : std::uint8_t;
enum class Backpressure : std::uint8_t;
struct SystemConfig;

// timers.hpp
struct TimerId;

// process.hpp
struct ChildProcess;

// registry.hpp, broker.hpp
class Registry;
class Broker;
struct PublishReport;

// system.hpp
struct SpawnOptions;
struct ActorStats;
struct SystemStats;
struct PoolUsage;
class System;

}  // namespace airssys
