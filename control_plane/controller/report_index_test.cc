#include "control_plane/controller/report_index.h"

#include <gtest/gtest.h>

namespace meshplug::control_plane::controller {
namespace {

using Agents = std::set<std::string>;

translate::Report ReportOf(const std::string& plugin, const translate::ObjectKey& chain,
                           const translate::ObjectKey& config, const std::string& conflict) {
  translate::Report r;
  r.mounted_plugins.insert(plugin);
  r.matched_chains.push_back(chain);
  r.applied_configs.insert(config);
  if (!conflict.empty()) r.conflicts[config].insert(conflict);
  return r;
}

// Status follows the reports as they change and as agents go, without scanning them.
TEST(ReportIndex, FollowsReportsAsTheyChangeAndAgentsGo) {
  const translate::ObjectKey chain{"curl", "c"}, config{"curl", "first"};
  ReportIndex index;
  const auto a = ReportOf("p", chain, config, "first and second both configure p");
  const auto b = ReportOf("p", chain, config, "first and second both configure p");
  index.Update("curl/a", nullptr, &a);
  index.Update("curl/b", nullptr, &b);
  EXPECT_EQ(index.PluginAgents("p"), (Agents{"curl/a", "curl/b"}));
  EXPECT_EQ(index.ChainAgents(chain), (Agents{"curl/a", "curl/b"}));
  EXPECT_EQ(index.ConfigAgents(config), (Agents{"curl/a", "curl/b"}));
  EXPECT_EQ(index.ConfigConflicts(config), (Agents{"first and second both configure p"}));

  // a stops mounting p (its chain changed); the conflict is still b's.
  const auto a2 = ReportOf("q", {"curl", "other"}, {"curl", "x"}, "");
  index.Update("curl/a", &a, &a2);
  EXPECT_EQ(index.PluginAgents("p"), (Agents{"curl/b"}));
  EXPECT_EQ(index.PluginAgents("q"), (Agents{"curl/a"}));
  EXPECT_EQ(index.ConfigConflicts(config).size(), 1u);

  // Translated again to the same keys, then to one more (a copy of a Service).
  const auto a3 = a2;
  index.Update("curl/a", &a2, &a3);
  EXPECT_EQ(index.PluginAgents("q"), (Agents{"curl/a"}));
  auto a4 = a3;
  a4.copied_services.insert("web");
  index.Update("curl/a", &a3, &a4);
  EXPECT_EQ(index.Copies().at("web"), (Agents{"curl/a"}));
  EXPECT_EQ(index.PluginAgents("q"), (Agents{"curl/a"}));

  index.Update("curl/b", &b, nullptr);  // b is gone
  EXPECT_TRUE(index.PluginAgents("p").empty());
  EXPECT_TRUE(index.ChainAgents(chain).empty());
  EXPECT_TRUE(index.ConfigConflicts(config).empty());
}

// An agent whose chains name a plugin that does not exist is found by that plugin, over
// all its chains, until it no longer misses it or goes.
TEST(ReportIndex, FindsTheAgentsThatMissAPlugin) {
  ReportIndex index;
  translate::Report a;
  a.missing_plugins[{"curl", "c1"}] = {"ghost"};
  a.missing_plugins[{"curl", "c2"}] = {"ghost", "phantom"};
  translate::Report b;
  b.missing_plugins[{"curl", "c1"}] = {"phantom"};
  index.Update("curl/a", nullptr, &a);
  index.Update("curl/b", nullptr, &b);
  EXPECT_EQ(index.MissingAgents("ghost"), (Agents{"curl/a"}));
  EXPECT_EQ(index.MissingAgents("phantom"), (Agents{"curl/a", "curl/b"}));
  EXPECT_TRUE(index.PluginAgents("ghost").empty());

  translate::Report a1 = a;  // missed through one chain less: still missed
  a1.missing_plugins.erase({"curl", "c2"});
  a1.missing_plugins[{"curl", "c1"}] = {"ghost", "phantom"};
  index.Update("curl/a", &a, &a1);
  EXPECT_EQ(index.MissingAgents("ghost"), (Agents{"curl/a"}));
  EXPECT_EQ(index.MissingAgents("phantom"), (Agents{"curl/a", "curl/b"}));
  a = a1;

  translate::Report a2;  // ghost now exists and a mounts it
  a2.mounted_plugins.insert("ghost");
  index.Update("curl/a", &a, &a2);
  EXPECT_TRUE(index.MissingAgents("ghost").empty());
  EXPECT_EQ(index.MissingAgents("phantom"), (Agents{"curl/b"}));
  EXPECT_EQ(index.PluginAgents("ghost"), (Agents{"curl/a"}));

  index.Update("curl/b", &b, nullptr);
  EXPECT_TRUE(index.MissingAgents("phantom").empty());
}

}  // namespace
}  // namespace meshplug::control_plane::controller
