// herald._herald: the kernel for CPython (EMBEDDING.md §3), on the public C++ API.
//
// Blocking calls release the GIL; notify keeps it (it never blocks, never allocates and calls
// nothing back). The asyncio layer (herald/__init__.py) is built on Subscription.fileno(), so no
// kernel thread ever calls into the interpreter.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_set>

#include "herald/kernel.hpp"
#include "herald/subscription.hpp"

namespace py = pybind11;

namespace {

/// A herald::Errc on its way to Python as herald.<Subclass>.
struct KernelError {
  herald::Errc code;
  std::string what;
};

[[noreturn]] void raise(herald::Errc code, std::string what) {
  throw KernelError{code, std::move(what)};
}

template <class T>
T check(herald::Result<T> r, const char* what) {
  if (!r) raise(r.error(), std::string(what) + ": " + std::string(herald::to_string(r.error())));
  return std::move(r).value();
}

void check(herald::Result<void> r, const char* what) {
  if (!r) raise(r.error(), std::string(what) + ": " + std::string(herald::to_string(r.error())));
}

// Python classes the module builds its results and errors from (herald/_types.py).
struct Types {
  PyTypeObject* receipt = nullptr;
  PyTypeObject* notification = nullptr;
  py::object errors;  // dict: Errc name -> exception class
  py::object error;   // herald.Error
};
Types& types() {
  static Types* t = new Types();  // leaked on purpose: outlives interpreter teardown order
  return *t;
}

void set_python_error(const KernelError& e) {
  py::object cls = types().error;
  const std::string name(herald::to_string(e.code));
  if (types().errors.contains(name.c_str())) cls = types().errors[name.c_str()];
  PyErr_SetString(cls.ptr(), e.what.c_str());
}

/// A namedtuple instance built directly (namedtuples are tuple subclasses without a dict): the
/// cost of a tuple, not of a Python-level __new__ call.
py::object make_tuple_of(PyTypeObject* type, std::initializer_list<PyObject*> items) {
  PyObject* t = type->tp_alloc(type, static_cast<Py_ssize_t>(items.size()));
  if (t == nullptr) {
    for (PyObject* item : items) Py_XDECREF(item);
    throw py::error_already_set();
  }
  Py_ssize_t i = 0;
  bool failed = false;
  for (PyObject* item : items) {
    if (item == nullptr) failed = true;
    PyTuple_SET_ITEM(t, i++, item);
  }
  auto result = py::reinterpret_steal<py::object>(t);
  if (failed) throw py::error_already_set();
  return result;
}

py::object make_notification(const herald::Notification& n) {
  return make_tuple_of(types().notification,
                       {PyLong_FromUnsignedLongLong(n.seq), PyLong_FromLongLong(n.arg)});
}

py::object make_receipt(const herald::NotifyReceipt& r) {
  return make_tuple_of(types().receipt,
                       {PyLong_FromUnsignedLongLong(r.seq), PyLong_FromUnsignedLong(r.delivered),
                        PyLong_FromUnsignedLong(r.dropped), PyLong_FromUnsignedLong(r.woken)});
}

/// A Python int in [lo, hi], or InvalidArgument naming the parameter.
std::uint64_t ranged(const py::handle& value, const char* name, std::uint64_t lo,
                     std::uint64_t hi) {
  if (!PyLong_Check(value.ptr()) || PyBool_Check(value.ptr())) {
    raise(herald::Errc::invalid_argument, std::string(name) + " must be an int");
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  std::uint64_t u = static_cast<std::uint64_t>(v);
  bool in_range = overflow == 0 && v >= 0;
  if (overflow > 0) {  // above INT64_MAX: maybe still a uint64
    u = PyLong_AsUnsignedLongLong(value.ptr());
    in_range = !(u == static_cast<std::uint64_t>(-1) && PyErr_Occurred());
    PyErr_Clear();
  }
  if (!in_range || u < lo || u > hi) {
    raise(herald::Errc::invalid_argument, std::string(name) + " out of range [" +
                                              std::to_string(lo) + ", " + std::to_string(hi) +
                                              "]: " + py::repr(value).cast<std::string>());
  }
  return u;
}

/// Seconds (float or int, None = no timeout) as a kernel timeout.
std::chrono::nanoseconds timeout_of(const py::object& timeout) {
  if (timeout.is_none()) return std::chrono::nanoseconds::max();
  const double seconds = py::cast<double>(timeout);
  if (std::isnan(seconds)) raise(herald::Errc::invalid_argument, "timeout is NaN");
  if (seconds <= 0) return std::chrono::nanoseconds::zero();
  if (seconds >= 1e9) return std::chrono::nanoseconds::max();  // ~31 years: no timeout
  return std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9));
}

class PyKernel;

/// herald.Subscription: one kernel Subscription, receivable from one thread at a time.
class PySubscription {
 public:
  PySubscription(std::shared_ptr<herald::Kernel> kernel, herald::Subscription sub)
      : kernel_(std::move(kernel)),
        sub_(std::move(sub)),
        handle_(sub_.handle()),
        capacity_(sub_.capacity()) {}

  ~PySubscription() {
    // The GIL is held here; no receive can be running (it would hold a reference).
    sub_ = herald::Subscription();
  }

  /// Notification, or None when empty; Closed once the handle is gone and this is drained, or
  /// after close().
  py::object try_recv() {
    auto lock = receive_lock();
    if (closed_.load()) raise(herald::Errc::closed, "subscription is closed");
    auto r = sub_.try_recv();
    if (r) return make_notification(*r);
    if (r.error() == herald::Errc::empty) return py::none();
    raise(r.error(), "try_recv: " + std::string(herald::to_string(r.error())));
  }

  py::object recv_blocking(const py::object& timeout) {
    herald::WaitOptions options;
    options.timeout = timeout_of(timeout);
    herald::Result<herald::Notification> r = herald::Errc::closed;
    {
      py::gil_scoped_release release;
      std::lock_guard lock(mutex_);
      if (!closed_.load()) {
        const std::stop_token token = stop_.get_token();
        options.stop = &token;
        r = sub_.recv_blocking(options);
      }
    }
    if (r) return make_notification(*r);
    if (r.error() == herald::Errc::cancelled && closed_.load()) {
      raise(herald::Errc::closed, "recv_blocking: subscription closed while waiting");
    }
    raise(r.error(), "recv_blocking: " + std::string(herald::to_string(r.error())));
  }

  /// The subscription's eventfd (readable while try_recv would return an item or raise Closed).
  int fileno() {
    auto lock = receive_lock();
    if (closed_.load()) raise(herald::Errc::closed, "subscription is closed");
    const int fd = sub_.pollable_fd();
    if (fd < 0) {
      PyErr_SetFromErrno(PyExc_OSError);
      throw py::error_already_set();
    }
    return fd;
  }

  /// Ends the subscription: a blocking receive in another thread returns Closed; the fd closes.
  /// The Subscription is destroyed with the GIL held, so the observers (size, dropped), which
  /// run under the GIL, never see it half gone.
  void close() {
    if (closed_.exchange(true)) return;
    stop_.request_stop();
    auto lock = receive_lock();
    dropped_at_close_ = sub_.dropped();
    sub_ = herald::Subscription();
  }

  bool closed() const { return closed_.load(); }
  std::size_t size() const { return sub_.size(); }
  std::uint64_t dropped() const { return sub_ ? sub_.dropped() : dropped_at_close_; }
  std::uint32_t capacity() const { return capacity_; }
  herald::Handle handle() const { return handle_; }

 private:
  std::unique_lock<std::mutex> receive_lock() {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) {
      py::gil_scoped_release release;  // a blocking receive holds it without the GIL
      lock.lock();
    }
    return lock;
  }

  std::shared_ptr<herald::Kernel> kernel_;  // outlives sub_
  herald::Subscription sub_;
  herald::Handle handle_;
  std::uint32_t capacity_;
  std::mutex mutex_;  // one receiver at a time; close() waits for a blocking receive to leave
  std::stop_source stop_;
  std::atomic<bool> closed_{false};
  std::uint64_t dropped_at_close_ = 0;  // under the GIL
};

/// herald.Kernel.
class PyKernel {
 public:
  PyKernel(const py::object& max_handles, const py::object& max_subscription_capacity,
           const py::object& memory_limit) {
    herald::KernelOptions options;
    options.max_handles =
        static_cast<std::uint32_t>(ranged(max_handles, "max_handles", 1, UINT32_MAX));
    options.max_subscription_capacity = static_cast<std::uint32_t>(
        ranged(max_subscription_capacity, "max_subscription_capacity", 1, UINT32_MAX));
    options.memory_limit = ranged(memory_limit, "memory_limit", 0, SIZE_MAX);
    try {
      kernel_ = std::make_shared<herald::Kernel>(options);
    } catch (const std::bad_alloc&) {
      raise(herald::Errc::out_of_memory, "Kernel: cannot allocate the handle table");
    }
  }

  herald::Handle register_handle(const std::string& debug_hint, bool single_producer,
                                 const py::object& max_waiters, const py::object& max_subscribers) {
    herald::HandleOptions options;
    options.debug_hint = debug_hint;
    options.producers = single_producer ? herald::Producers::single : herald::Producers::multi;
    options.max_waiters =
        static_cast<std::uint32_t>(ranged(max_waiters, "max_waiters", 0, UINT32_MAX));
    options.max_subscribers =
        static_cast<std::uint32_t>(ranged(max_subscribers, "max_subscribers", 0, UINT32_MAX));
    const herald::Handle h = check(kernel_->register_handle(options), "register");
    std::lock_guard lock(mutex_);
    live_.insert(h.raw());
    return h;
  }

  void unregister(herald::Handle h) {
    herald::Result<void> r;
    {
      py::gil_scoped_release release;  // waits for a grace period
      r = kernel_->unregister_handle(h);
    }
    {
      std::lock_guard lock(mutex_);
      live_.erase(h.raw());
    }
    check(r, "unregister");
  }

  py::object notify(herald::Handle h, std::int64_t arg) {
    herald::Result<herald::NotifyReceipt> r = herald::Errc::closed;
    Py_BEGIN_ALLOW_THREADS r = kernel_->notify(h, arg);
    Py_END_ALLOW_THREADS if (!r)
        raise(r.error(), "notify: " + std::string(herald::to_string(r.error())));
    return make_receipt(*r);
  }

  std::uint64_t observe(herald::Handle h) { return check(kernel_->observe(h), "observe").seq; }

  py::object wait_blocking(herald::Handle h, const py::object& after, const py::object& timeout) {
    herald::WaitOptions options;
    options.timeout = timeout_of(timeout);
    const std::uint64_t ticket = ranged(after, "after", 0, UINT64_MAX >> 1);
    herald::Result<herald::Notification> r = herald::Errc::closed;
    {
      py::gil_scoped_release release;
      r = kernel_->wait_blocking(h, herald::Ticket{ticket}, options);
    }
    return make_notification(check(r, "wait_blocking"));
  }

  /// The latest notification after `after` if one is published now, else None (never blocks).
  py::object try_wait(herald::Handle h, const py::object& after) {
    herald::WaitOptions options;
    options.timeout = std::chrono::nanoseconds::zero();
    auto r = kernel_->wait_blocking(h, herald::Ticket{ranged(after, "after", 0, UINT64_MAX >> 1)},
                                    options);
    if (!r && r.error() == herald::Errc::timed_out) return py::none();
    return make_notification(check(r, "wait"));
  }

  std::unique_ptr<PySubscription> subscribe(herald::Handle h, const py::object& capacity,
                                            const std::string& overflow,
                                            const std::string& debug_hint) {
    herald::SubscriptionOptions options;
    options.capacity = static_cast<std::uint32_t>(ranged(capacity, "capacity", 1, UINT32_MAX));
    if (overflow == "drop_newest") {
      options.overflow = herald::Overflow::drop_newest;
    } else if (overflow == "keep_latest") {
      options.overflow = herald::Overflow::keep_latest;
    } else {
      raise(herald::Errc::invalid_argument,
            "overflow must be 'drop_newest' or 'keep_latest', not '" + overflow + "'");
    }
    options.debug_hint = debug_hint;
    herald::Subscription sub;
    try {
      sub = check(kernel_->subscribe(h, options), "subscribe");
    } catch (const std::bad_alloc&) {
      raise(herald::Errc::out_of_memory, "subscribe: allocation failed");
    }
    return std::make_unique<PySubscription>(kernel_, std::move(sub));
  }

  py::dict stats() const {
    const herald::KernelStats s = kernel_->stats();
    py::dict d;
    d["live_handles"] = s.live_handles;
    d["notifications"] = s.notifications;
    d["rejected"] = s.rejected;
    d["delivered"] = s.delivered;
    d["dropped"] = s.dropped;
    d["memory_used"] = s.memory_used;
    return d;
  }

  py::dict handle_stats(herald::Handle h) const {
    const herald::HandleStats s = check(kernel_->stats(h), "stats");
    py::dict d;
    d["notifications"] = s.notifications;
    d["delivered"] = s.delivered;
    d["dropped"] = s.dropped;
    d["waiters"] = s.waiters;
    d["subscriptions"] = s.subscriptions;
    return d;
  }

  std::string describe_json() const { return kernel_->describe(); }

  /// Unregisters every handle registered through this object (waiters wake with Closed,
  /// subscriptions drain then close). The kernel itself lives while any Subscription does.
  void close() {
    std::unordered_set<std::uint64_t> live;
    {
      std::lock_guard lock(mutex_);
      live.swap(live_);
    }
    py::gil_scoped_release release;
    for (std::uint64_t raw : live) (void)kernel_->unregister_handle(herald::Handle::from_raw(raw));
  }

  std::string repr() const {
    const herald::KernelStats s = kernel_->stats();
    return "<herald.Kernel live_handles=" + std::to_string(s.live_handles) +
           " notifications=" + std::to_string(s.notifications) +
           " memory_used=" + std::to_string(s.memory_used) + ">";
  }

 private:
  std::shared_ptr<herald::Kernel> kernel_;
  std::mutex mutex_;
  std::unordered_set<std::uint64_t> live_;
};

/// Kernel.notify as a METH_FASTCALL method: the hot call from Python skips pybind11's generic
/// dispatch (argument-converter lists, overload resolution).
PyObject* fast_notify(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  try {
    if (nargs != 2) {
      PyErr_Format(PyExc_TypeError, "notify(handle, arg) takes 2 positional arguments, %zd given",
                   nargs);
      return nullptr;
    }
    PyKernel& kernel = py::handle(self).cast<PyKernel&>();
    const herald::Handle h = py::handle(args[0]).cast<herald::Handle>();
    int overflow = 0;
    const long long arg = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (arg == -1 && PyErr_Occurred()) return nullptr;
    if (overflow != 0) {
      PyErr_SetString(PyExc_OverflowError, "notify: arg must fit a signed 64-bit integer");
      return nullptr;
    }
    return kernel.notify(h, arg).release().ptr();
  } catch (const KernelError& e) {
    set_python_error(e);
  } catch (const py::cast_error&) {
    PyErr_SetString(PyExc_TypeError, "notify: handle must be a herald.Handle");
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

PyMethodDef fast_notify_def = {
    "notify", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&fast_notify)),
    METH_FASTCALL,
    "notify(handle, arg) -> Receipt(seq, delivered, dropped, woken). Any thread; never blocks, "
    "never allocates in the kernel, runs no callback."};

std::string handle_repr(herald::Handle h) {
  return "Handle(index=" + std::to_string(h.index()) +
         ", generation=" + std::to_string(h.generation()) + ")";
}

}  // namespace

PYBIND11_MODULE(_herald, m) {
  m.doc() = "herald's notification kernel (C++), for CPython; use the herald package.";

  py::module_ support = py::module_::import("herald._types");
  types().receipt = reinterpret_cast<PyTypeObject*>(support.attr("Receipt").ptr());
  types().notification = reinterpret_cast<PyTypeObject*>(support.attr("Notification").ptr());
  Py_INCREF(types().receipt);
  Py_INCREF(types().notification);
  types().errors = support.attr("ERRORS");
  types().error = support.attr("Error");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const KernelError& e) {
      set_python_error(e);
    } catch (const std::bad_alloc&) {
      PyErr_SetString(types().errors["out_of_memory"].ptr(), "out of memory");
    }
  });

  py::class_<herald::Handle>(m, "Handle", "A registered notification source (hashable).")
      .def_property_readonly("raw", &herald::Handle::raw, "The 64 bits (Handle.from_raw inverts)")
      .def_property_readonly("index", &herald::Handle::index)
      .def_property_readonly("generation", &herald::Handle::generation)
      .def_static(
          "from_raw",
          [](const py::object& raw) {
            return herald::Handle::from_raw(ranged(raw, "raw", 0, UINT64_MAX >> 0));
          },
          py::arg("raw"))
      .def("__eq__",
           [](const herald::Handle& a, const py::object& b) {
             return py::isinstance<herald::Handle>(b) && a == b.cast<herald::Handle>();
           })
      .def("__hash__", [](const herald::Handle& h) { return std::hash<std::uint64_t>{}(h.raw()); })
      .def("__bool__", [](const herald::Handle& h) { return static_cast<bool>(h); })
      .def("__int__", &herald::Handle::raw)
      .def("__repr__", &handle_repr)
      .def(py::pickle(
          [](const herald::Handle& h) { return py::make_tuple(h.raw()); },
          [](const py::tuple& t) { return herald::Handle::from_raw(t[0].cast<std::uint64_t>()); }));

  py::class_<PySubscription>(m, "Subscription", py::dynamic_attr(),
                             "One consumer's bounded channel of every notification on a handle.")
      .def("try_recv", &PySubscription::try_recv,
           "Notification, or None when nothing is buffered; raises Closed once drained")
      .def("recv_blocking", &PySubscription::recv_blocking, py::arg("timeout") = py::none(),
           "Blocks (GIL released) for the next notification; TimedOut, Closed")
      .def("fileno", &PySubscription::fileno,
           "An eventfd readable while try_recv would return an item or raise Closed")
      .def("_close", &PySubscription::close)
      .def_property_readonly("closed", &PySubscription::closed)
      .def_property_readonly("size", &PySubscription::size)
      .def_property_readonly("dropped", &PySubscription::dropped)
      .def_property_readonly("capacity", &PySubscription::capacity)
      .def_property_readonly("handle", &PySubscription::handle)
      .def("__repr__", [](const PySubscription& s) {
        return "<herald.Subscription handle=" + handle_repr(s.handle()) +
               " capacity=" + std::to_string(s.capacity()) + " size=" + std::to_string(s.size()) +
               " dropped=" + std::to_string(s.dropped()) + (s.closed() ? " closed" : "") + ">";
      });

  py::class_<PyKernel> kernel_class(
      m, "Kernel", py::dynamic_attr(),
      "The notification kernel: handles that threads notify and clients await.");
  kernel_class
      .def(py::init<const py::object&, const py::object&, const py::object&>(),
           py::arg("max_handles") = 65536, py::arg("max_subscription_capacity") = 65536,
           py::arg("memory_limit") = std::uint64_t{256} << 20)
      .def("register", &PyKernel::register_handle, py::arg("debug_hint") = "",
           py::arg("single_producer") = false, py::arg("max_waiters") = 64,
           py::arg("max_subscribers") = 16)
      .def("unregister", &PyKernel::unregister, py::arg("handle"))
      .def("notify", &PyKernel::notify, py::arg("handle"), py::arg("arg"),
           "Any thread; never blocks, runs no callback. -> Receipt(seq, delivered, dropped, woken)")
      .def("observe", &PyKernel::observe, py::arg("handle"))
      .def("wait_blocking", &PyKernel::wait_blocking, py::arg("handle"), py::arg("after"),
           py::arg("timeout") = py::none(), "Blocks (GIL released); -> Notification(seq, arg)")
      .def("_try_wait", &PyKernel::try_wait)
      .def("subscribe", &PyKernel::subscribe, py::arg("handle"), py::arg("capacity") = 256,
           py::arg("overflow") = "drop_newest", py::arg("debug_hint") = "")
      .def("stats", &PyKernel::stats)
      .def("stats", &PyKernel::handle_stats, py::arg("handle"))
      .def("_describe_json", &PyKernel::describe_json)
      .def("close", &PyKernel::close,
           "Unregisters every handle registered through this Kernel object")
      .def("__repr__", &PyKernel::repr);
  {
    PyObject* descr =
        PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(kernel_class.ptr()), &fast_notify_def);
    if (descr == nullptr) throw py::error_already_set();
    kernel_class.attr("notify") = py::reinterpret_steal<py::object>(descr);
  }

  m.attr("ABI_VERSION") = 1;
}
