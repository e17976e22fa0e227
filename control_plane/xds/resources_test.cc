#include "control_plane/xds/resources.h"

#include <gtest/gtest.h>

#include <tuple>

#include "common/xds_types.h"

namespace meshplug::control_plane::xds {
namespace {

v1::Snapshot Destinations(int endpoints, uint32_t port) {
  v1::Snapshot snap;
  for (const char* name : {"a", "b"}) {
    auto* s = snap.add_services();
    s->set_name(name);
    s->add_ports()->set_port(port);
    auto* e = snap.add_endpoints();
    e->set_cluster(std::string(name) + "|80");
    for (int i = 0; i < endpoints; ++i) e->add_endpoints()->set_address("10.0.0." + std::to_string(i + 1));
  }
  return snap;
}

// An agent's own part: its settings, and its copy of destination "a" (with a config).
v1::Snapshot Own() {
  v1::Snapshot snap;
  snap.mutable_settings()->mutable_workload()->set_name("web-1");
  auto* a = snap.add_services();
  a->set_name("a");
  (*(*a->mutable_plugin_configs())["p"].mutable_fields())["k"].set_string_value("x");
  return snap;
}

// Rebasing gives what a translation over the new destinations would: the own part kept
// (the same encodings), the shared resources and every version as ToResources makes them.
TEST(RebaseTest, IsWhatTranslatingOverTheNewDestinationsGives) {
  ResourceInterner interner;
  const auto before = ToResources(Destinations(1, 80), interner);
  struct Case {
    const char* what;
    v1::Snapshot destinations;
    bool services_change;
  };
  for (const Case& c : {Case{"an endpoint joins", Destinations(2, 80), false},
                        Case{"the ports change (a is the agent's own, b is not)", Destinations(1, 81), true},
                        Case{"nothing changes", Destinations(1, 80), false}}) {
    SCOPED_TRACE(c.what);
    const auto after = ToResources(c.destinations, interner);
    for (const auto& agent : {ToResources(Own(), interner, before), ToResources(Own(), interner)}) {
      const auto rebased = Rebase(*agent, after);
      const auto translated = ToResources(Own(), interner, after);
      EXPECT_EQ(rebased->base, after);
      EXPECT_EQ(rebased->own, agent->own);
      EXPECT_EQ(rebased->type_versions, translated->type_versions);
      EXPECT_EQ(rebased->version, translated->version);
      if (!agent->base) continue;
      const auto& services = xds_types::UrlOf<v1::Service>();
      EXPECT_EQ(rebased->TypeVersion(services) != agent->TypeVersion(services), c.services_change);
      // The agent's own copy wins: keeping it current is the controller's (it translates
      // the agents holding a copy of a Service that changed).
      EXPECT_EQ(rebased->Find(services, "a"), agent->Find(services, "a"));
    }
  }
}

// Replacing a script gives what a translation with the new script would: the other
// resources the same encodings, only the PluginScript type versioned again. A name the
// agent does not hold is left out.
TEST(ReplaceTest, IsWhatTranslatingWithTheNewScriptGives) {
  ResourceInterner interner;
  const auto destinations = ToResources(Destinations(1, 80), interner);
  auto with_script = [](const std::string& source) {
    v1::Snapshot snap = Own();
    auto* s = snap.add_scripts();
    s->set_name("p");
    s->set_plugin("p");
    s->set_source(source);
    return snap;
  };
  const auto agent = ToResources(with_script("v1"), interner, destinations);
  v1::PluginScript v2 = with_script("v2").scripts(0);
  v1::PluginScript other = v2;
  other.set_name("q");
  const auto replaced = Replace(*agent, xds_types::UrlOf<v1::PluginScript>(),
                                {interner.Intern("p", v2), interner.Intern("q", other)});
  const auto translated = ToResources(with_script("v2"), interner, destinations);
  EXPECT_EQ(replaced->type_versions, translated->type_versions);
  EXPECT_EQ(replaced->version, translated->version);
  EXPECT_EQ(replaced->base, destinations);
  EXPECT_EQ(replaced->Of(xds_types::UrlOf<v1::PluginScript>()), translated->Of(xds_types::UrlOf<v1::PluginScript>()));
  EXPECT_EQ(replaced->Find(xds_types::UrlOf<v1::PluginScript>(), "q"), nullptr);
  for (const auto& [type, version] : agent->type_versions) {
    EXPECT_EQ(replaced->type_versions.at(type) != version, type == xds_types::UrlOf<v1::PluginScript>()) << type;
    if (type != xds_types::UrlOf<v1::PluginScript>()) {
      EXPECT_EQ(replaced->Of(type), agent->Of(type)) << type;
    }
  }
}

// Equal bytes of one type and name are one object, while anyone holds it; anything else
// that differs (bytes, name, type) is another.
TEST(ResourceInternerTest, EqualResourcesAreOneObject) {
  ResourceInterner interner;
  v1::Service a;
  a.set_name("a");
  a.add_ports()->set_port(80);
  const ResourcePtr first = interner.Intern("a", a);
  EXPECT_EQ(interner.Intern("a", a), first);
  EXPECT_EQ(first->version, xds_types::ResourceVersion(a));
  EXPECT_NE(interner.Intern("b", a), first);
  v1::Service other = a;
  other.mutable_ports(0)->set_port(81);
  const ResourcePtr changed = interner.Intern("a", other);
  EXPECT_NE(changed, first);
  EXPECT_EQ(changed->version, xds_types::ResourceVersion(other));
  // A Cluster{name: a} and an Endpoints{cluster: a} have the same bytes.
  v1::Cluster cluster;
  cluster.set_name("a");
  v1::Endpoints endpoints;
  endpoints.set_cluster("a");
  ASSERT_EQ(cluster.SerializeAsString(), endpoints.SerializeAsString());
  const ResourcePtr cluster_a = interner.Intern("a", cluster);
  const ResourcePtr endpoints_a = interner.Intern("a", endpoints);
  EXPECT_NE(cluster_a, endpoints_a);
  EXPECT_NE(cluster_a->AnyBytes().find(xds_types::UrlOf<v1::Cluster>()), std::string_view::npos);
  EXPECT_NE(endpoints_a->AnyBytes().find(xds_types::UrlOf<v1::Endpoints>()), std::string_view::npos);
  EXPECT_EQ(interner.Intern("a", endpoints), endpoints_a);
}

// Versions made with the agent's previous resources are those made without them, whether
// a type changed, stayed, or the base moved under it.
TEST(ToResourcesTest, PreviousResourcesGiveTheSameVersions) {
  ResourceInterner interner;
  const auto base = ToResources(Destinations(1, 80), interner);
  const auto moved = ToResources(Destinations(2, 80), interner);
  const auto previous = ToResources(Own(), interner, base);
  v1::Snapshot changed = Own();
  changed.mutable_settings()->mutable_workload()->set_name("web-2");
  for (const auto& [what, own, over] : {std::tuple{"nothing changes", Own(), base},
                                        std::tuple{"the settings change", changed, base},
                                        std::tuple{"the base moves", Own(), moved}}) {
    SCOPED_TRACE(what);
    const auto fresh = ToResources(own, interner, over);
    const auto reused = ToResources(own, interner, over, previous.get());
    EXPECT_EQ(reused->type_versions, fresh->type_versions);
    EXPECT_EQ(reused->version, fresh->version);
    EXPECT_EQ(reused->own, fresh->own);
  }
  EXPECT_NE(ToResources(changed, interner, base, previous.get())->version, previous->version);
}

}  // namespace
}  // namespace meshplug::control_plane::xds
