// Per-component loggers (spdlog): log::get("fs"), log::get("mountctl"), ... all write to
// stderr with the component's name. The level comes from SPDLOG_LEVEL (e.g. "debug",
// "info,fs=debug"); the default is info.
#pragma once

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <string>

namespace hostchanfs::log {

inline std::shared_ptr<spdlog::logger> get(const std::string& component) {
  static std::once_flag env_loaded;
  static std::mutex create_mutex;
  std::lock_guard lock(create_mutex);
  if (auto existing = spdlog::get(component)) return existing;
  auto logger = spdlog::stderr_color_mt(component);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n[%P]: %v");
  std::call_once(env_loaded, [] { spdlog::cfg::load_env_levels(); });
  return logger;
}

}  // namespace hostchanfs::log
