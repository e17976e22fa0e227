// Small snapshot resources for tests of the xDS client's parts.
#pragma once

#include <memory>
#include <string>

#include "agent/xds/xds_resources.h"

namespace meshplug::agent::xds::testing_resources {

template <typename M>
inline void Put(ResourceSet& set, const std::string& name, const M& msg, const std::string& version = "v1") {
  set.Put(UrlOf<M>(), name, ResourceSet::Entry{version, std::make_shared<M>(msg)});
}

inline v1::ChainSet Chains(const std::string& script) {
  v1::ChainSet c;
  c.set_name("chains");
  auto* m = c.add_outbound_http();
  m->set_name("audit");
  m->set_script(script);
  auto* d = c.add_outbound_http();
  d->set_name("http-default");
  d->set_builtin(true);
  return c;
}

inline v1::Service Service(const std::string& name, const std::string& cluster, bool inbound = false) {
  v1::Service s;
  s.set_name(name);
  s.set_inbound(inbound);
  s.add_routes()->add_clusters()->set_cluster(cluster);
  return s;
}

inline v1::Cluster Cluster(const std::string& name) {
  v1::Cluster c;
  c.set_name(name);
  return c;
}

inline v1::Endpoints Endpoints(const std::string& cluster) {
  v1::Endpoints e;
  e.set_cluster(cluster);
  return e;
}

inline v1::PluginScript Script(const std::string& name) {
  v1::PluginScript s;
  s.set_name(name);
  s.set_source("function on_request() end");
  return s;
}

inline ResourceSet Complete() {
  ResourceSet set;
  Put(set, "chains", Chains("audit@1"));
  Put(set, "audit@1", Script("audit@1"));
  Put(set, "web.shop", Service("web.shop", "web.shop|80"));
  Put(set, "web.shop|inbound", Service("web.shop", "web.shop|80|local", true));
  Put(set, "web.shop|80", Cluster("web.shop|80"));
  Put(set, "web.shop|80|local", Cluster("web.shop|80|local"));
  Put(set, "web.shop|80", Endpoints("web.shop|80"));
  Put(set, "web.shop|80|local", Endpoints("web.shop|80|local"));
  return set;
}

}  // namespace meshplug::agent::xds::testing_resources
