// The Python module `kiln`: pybind11 over the public C++ API (include/kiln/kiln.h).
//
//   import kiln, numpy as np
//   engine = kiln.load("models/tiny_cnn.onnx")       # or a .plan; shapes={"input": (8, 3, 32, 32)}
//   probs = engine.run({"input": np.zeros((1, 3, 32, 32), np.float32)})["probs"]
//
// Inputs that are C-contiguous, aligned and of the engine's dtype are read in place (no copy);
// others are converted when only the layout or the width differs (float64 -> float32), and
// refused with a TypeError when the kind differs (int -> float). Outputs are NumPy arrays
// that own the engine's result buffers (no copy). run() releases the GIL: Python threads,
// each with its own context, run in parallel. kiln errors become Python exceptions:
// InvalidArgument -> ValueError, NotFound -> KeyError, OutOfRange -> IndexError,
// IoError -> OSError, Unimplemented -> NotImplementedError, others -> RuntimeError.
// bfloat16 tensors (NumPy has no such type) are exchanged as uint16 arrays of the raw bits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <kiln/kiln.h>

#include <cstring>
#include <functional>
#include <map>
#include <tuple>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;
// Dynamic-shape profiles: [{input name: (min shape, opt shape, max shape)}, ...].
using Range = std::tuple<std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>>;
using Profiles = std::vector<std::map<std::string, Range>>;

[[noreturn]] void Raise(const kiln::Status& s) {
  PyObject* type = PyExc_RuntimeError;
  switch (s.code()) {
    case kiln::StatusCode::kInvalidArgument: type = PyExc_ValueError; break;
    case kiln::StatusCode::kNotFound: type = PyExc_KeyError; break;
    case kiln::StatusCode::kOutOfRange: type = PyExc_IndexError; break;
    case kiln::StatusCode::kIoError: type = PyExc_OSError; break;
    case kiln::StatusCode::kUnimplemented: type = PyExc_NotImplementedError; break;
    default: break;
  }
  PyErr_SetString(type, s.message().c_str());
  throw py::error_already_set();
}

void Check(const kiln::Status& s) {
  if (!s.ok()) Raise(s);
}

template <typename T>
T Check(kiln::StatusOr<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(r).value();
}

py::dtype ToNumpy(kiln::DataType t) {
  switch (t) {
    case kiln::DataType::kFloat32: return py::dtype::of<float>();
    case kiln::DataType::kUInt8: return py::dtype::of<uint8_t>();
    case kiln::DataType::kInt8: return py::dtype::of<int8_t>();
    case kiln::DataType::kInt32: return py::dtype::of<int32_t>();
    case kiln::DataType::kInt64: return py::dtype::of<int64_t>();
    case kiln::DataType::kBool: return py::dtype::of<bool>();
    case kiln::DataType::kFloat16: return py::dtype("float16");
    case kiln::DataType::kFloat64: return py::dtype::of<double>();
    case kiln::DataType::kBFloat16: return py::dtype::of<uint16_t>();  // raw bits
    case kiln::DataType::kUInt16: return py::dtype::of<uint16_t>();
    case kiln::DataType::kInt16: return py::dtype::of<int16_t>();
    case kiln::DataType::kUInt32: return py::dtype::of<uint32_t>();
    case kiln::DataType::kUInt64: return py::dtype::of<uint64_t>();
    case kiln::DataType::kComplex64: return py::dtype("complex64");
    case kiln::DataType::kComplex128: return py::dtype("complex128");
    case kiln::DataType::kString: return py::dtype("O");  // Python str (bytes when not UTF-8)
  }
  throw std::runtime_error(std::string("kiln: no NumPy dtype for ") + kiln::DataTypeName(t));
}

py::tuple ToTuple(const std::vector<int64_t>& v) {
  py::tuple t(v.size());
  for (size_t i = 0; i < v.size(); ++i) t[i] = py::int_(v[i]);
  return t;
}

// (name, numpy dtype, shape) for a tensor; a sequence or optional adds its kind:
// (name, dtype, shape, "sequence" | "optional(tensor)" | "optional(sequence)").
py::list Infos(const std::vector<kiln::TensorInfo>& infos) {
  py::list l;
  for (const kiln::TensorInfo& i : infos) {
    if (i.kind == kiln::ValueKind::kTensor)
      l.append(py::make_tuple(i.name, ToNumpy(i.dtype), ToTuple(i.shape)));
    else
      l.append(py::make_tuple(i.name, ToNumpy(i.dtype), ToTuple(i.shape), kiln::ValueKindName(i.kind)));
  }
  return l;
}

std::string FsPath(const py::object& p) {
  return py::module_::import("os").attr("fsdecode")(p).cast<std::string>();
}

// An array whose bytes the engine can read in place for input `info`: `obj` itself when it is
// a C-contiguous, aligned ndarray of the engine's dtype, else a converted copy.
py::array AsInput(const py::handle& obj, const kiln::TensorInfo& info) {
  py::dtype want = ToNumpy(info.dtype);
  py::module_ np = py::module_::import("numpy");
  py::array a = np.attr("asanyarray")(obj);
  py::dtype got = a.dtype();
  if (!got.equal(want) &&
      (got.kind() != want.kind() || info.dtype == kiln::DataType::kBFloat16)) {
    throw py::type_error("input '" + info.name + "' must be " + py::str(want).cast<std::string>() +
                         ", got " + py::str(got).cast<std::string>());
  }
  return np.attr("require")(a, want, "CA");  // `a` itself when nothing needs changing
}

kiln::HostTensor View(const py::array& a, kiln::DataType dtype) {
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  return kiln::HostTensor::Wrap(dtype, std::move(shape), const_cast<void*>(a.data()));
}

// A string tensor from str/bytes/object arrays (copied: strings are std::string objects).
kiln::HostTensor StringTensor(const py::handle& obj, const std::string& what) {
  py::module_ np = py::module_::import("numpy");
  py::array a = np.attr("asarray")(obj, "O");
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  kiln::HostTensor t = kiln::HostTensor::Allocate(kiln::DataType::kString, shape);
  py::list flat = a.attr("ravel")().attr("tolist")();
  for (size_t i = 0; i < flat.size(); ++i) {
    py::handle e = flat[i];
    if (py::isinstance<py::str>(e)) t.data_as<std::string>()[i] = e.cast<std::string>();
    else if (py::isinstance<py::bytes>(e)) t.data_as<std::string>()[i] = std::string(e.cast<py::bytes>());
    else throw py::type_error(what + " must hold str or bytes, element " + std::to_string(i) + " is " +
                              py::str(e.get_type()).cast<std::string>());
  }
  return t;
}

// Hands the tensor's buffer to NumPy: the array keeps it alive through a capsule.
py::array ToArray(kiln::HostTensor t) {
  if (t.dtype() == kiln::DataType::kString) {
    py::list items;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const std::string& v = t.data_as<std::string>()[i];
      PyObject* u = PyUnicode_DecodeUTF8(v.data(), static_cast<py::ssize_t>(v.size()), "strict");
      if (u == nullptr) {
        PyErr_Clear();
        items.append(py::bytes(v));
      } else {
        items.append(py::reinterpret_steal<py::object>(u));
      }
    }
    py::module_ np = py::module_::import("numpy");
    py::array a = np.attr("empty")(ToTuple(t.shape()), "O");
    a.attr("reshape")(-1).attr("__setitem__")(py::slice(0, static_cast<py::ssize_t>(t.numel()), 1), items);
    return a;
  }
  py::dtype dtype = ToNumpy(t.dtype());
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  auto owned = std::make_unique<kiln::HostTensor>(std::move(t));
  void* data = owned->data();
  py::capsule base(owned.get(), [](void* p) { delete static_cast<kiln::HostTensor*>(p); });
  owned.release();
  return py::array(dtype, shape, data, base);
}

// Binds one input of any kind: a tensor (array-like), a sequence (list/tuple of them), or
// None for an optional. What must stay alive during the run is appended to `keep`.
void BindInput(kiln::ExecutionContext& ctx, int i, const kiln::TensorInfo& info, const py::handle& value, py::list& keep) {
  const std::string what = "input '" + info.name + "'";
  auto tensor = [&](const py::handle& v, const std::string& w) -> kiln::HostTensor {
    if (info.dtype == kiln::DataType::kString) {
      auto owned = std::make_unique<kiln::HostTensor>(StringTensor(v, w));
      kiln::HostTensor view = *owned;
      keep.append(py::capsule(owned.release(), [](void* p) { delete static_cast<kiln::HostTensor*>(p); }));
      return view;
    }
    py::array a = AsInput(v, info);
    keep.append(a);
    return View(a, info.dtype);
  };
  const bool optional = info.kind == kiln::ValueKind::kOptionalTensor || info.kind == kiln::ValueKind::kOptionalSequence;
  if (value.is_none()) {
    if (!optional) throw py::type_error(what + " is a " + kiln::ValueKindName(info.kind) + " and needs a value (None is for optional inputs)");
    Check(ctx.SetInputNone(i));
    return;
  }
  if (info.kind == kiln::ValueKind::kSequence || info.kind == kiln::ValueKind::kOptionalSequence) {
    if (!py::isinstance<py::list>(value) && !py::isinstance<py::tuple>(value))
      throw py::type_error(what + " is a sequence: pass a list of arrays");
    std::vector<kiln::HostTensor> elems;
    size_t k = 0;
    for (py::handle e : value) elems.push_back(tensor(e, what + " element " + std::to_string(k++)));
    Check(ctx.SetInputSequence(i, elems));
    return;
  }
  Check(ctx.SetInput(i, tensor(value, what)));
}

// Output i of the last run as a Python value: an array, a list of arrays, or None.
py::object OutputValue(const kiln::ExecutionContext& ctx, int i, const kiln::TensorInfo& info) {
  if (Check(ctx.OutputIsNone(i))) return py::none();
  if (info.kind == kiln::ValueKind::kSequence || info.kind == kiln::ValueKind::kOptionalSequence) {
    py::list l;
    for (kiln::HostTensor& t : Check(ctx.OutputSequence(i))) l.append(ToArray(std::move(t)));
    return l;
  }
  return ToArray(Check(ctx.Output(i)));
}

struct PyEngine {
  std::shared_ptr<const kiln::Engine> engine;

  int InputIndex(const std::string& name) const {
    const auto& ins = engine->inputs();
    for (size_t i = 0; i < ins.size(); ++i)
      if (ins[i].name == name) return static_cast<int>(i);
    std::string names;
    for (const kiln::TensorInfo& in : ins) names += (names.empty() ? "" : ", ") + in.name;
    PyErr_SetString(PyExc_KeyError, ("the model has no input '" + name + "' (inputs: " + names + ")").c_str());
    throw py::error_already_set();
  }
};

kiln::BuildOptions Options(const std::optional<Shapes>& shapes, bool optimize, const std::string& precision,
                           int threads, const std::string& backend, const std::optional<Profiles>& profiles,
                           const std::string& batch_parallel, bool strict) {
  kiln::BuildOptions o;
  if (profiles)
    for (const auto& p : *profiles) {
      std::map<std::string, kiln::ShapeRange> m;
      for (const auto& [name, r] : p) m[name] = kiln::ShapeRange{std::get<0>(r), std::get<1>(r), std::get<2>(r)};
      o.profiles.push_back(std::move(m));
    }
  if (shapes) o.input_shapes = *shapes;
  o.optimize = optimize;
  o.precision = Check(kiln::ParsePrecision(precision));
  o.threads = threads;
  o.backend = Check(kiln::ParseBackend(backend));
  o.batch_parallel = Check(kiln::ParseBatchParallel(batch_parallel));
  o.strict = strict;
  return o;
}

PyEngine Load(const py::object& path, const std::optional<Shapes>& shapes, bool optimize, const std::string& precision,
              int threads, const std::string& backend, const std::optional<Profiles>& profiles,
              const std::string& batch_parallel, bool strict) {
  const std::string p = FsPath(path);
  const kiln::BuildOptions o = Options(shapes, optimize, precision, threads, backend, profiles, batch_parallel, strict);
  kiln::StatusOr<std::shared_ptr<const kiln::Engine>> e = kiln::Status(kiln::StatusCode::kInternal, "not run");
  {
    py::gil_scoped_release nogil;
    e = kiln::LoadOrBuild(p, o);
  }
  return PyEngine{Check(std::move(e))};
}

// INT8 calibration batches from a Python iterable of {input name: array} dicts, pulled
// (with the GIL) as the builder asks for them; each array copied as float32.
std::function<kiln::StatusOr<bool>(std::map<std::string, kiln::HostTensor>*)> PyBatches(const py::object& iterable) {
  auto it = std::make_shared<py::object>(py::iter(iterable));
  return [it](std::map<std::string, kiln::HostTensor>* batch) -> kiln::StatusOr<bool> {
    py::gil_scoped_acquire gil;
    try {
      py::object item;
      try {
        item = (*it).attr("__next__")();
      } catch (py::error_already_set& e) {
        if (e.matches(PyExc_StopIteration)) return false;
        throw;
      }
      if (!py::isinstance<py::dict>(item))
        return kiln::Status(kiln::StatusCode::kInvalidArgument, "a calibration batch must be a dict {input name: array}");
      py::module_ np = py::module_::import("numpy");
      for (const auto& [k, v] : item.cast<py::dict>()) {
        py::array a = np.attr("ascontiguousarray")(v, "float32");
        std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
        kiln::HostTensor t = kiln::HostTensor::Allocate(kiln::DataType::kFloat32, shape);
        if (t.nbytes() > 0) std::memcpy(t.data(), a.data(), t.nbytes());
        (*batch)[py::str(k).cast<std::string>()] = std::move(t);
      }
      return true;
    } catch (py::error_already_set& e) {
      return kiln::Status(kiln::StatusCode::kInvalidArgument, std::string("calibration data: ") + e.what());
    }
  };
}

PyEngine Build(const py::object& onnx_path, const py::object& plan_path, const std::optional<Shapes>& shapes, bool optimize,
               const std::string& precision, int threads, const std::string& backend,
               const std::optional<Profiles>& profiles, const std::string& batch_parallel, bool strict,
               const py::object& calibration, const std::string& calibrator, const py::object& calibration_cache,
               double percentile, const std::vector<std::string>& keep_fp32) {
  const std::string src = FsPath(onnx_path), dst = FsPath(plan_path);
  kiln::BuildOptions o = Options(shapes, optimize, precision, threads, backend, profiles, batch_parallel, strict);
  if (!calibration.is_none()) o.calibration.next_batch = PyBatches(calibration);
  if (!calibration_cache.is_none()) o.calibration.cache = FsPath(calibration_cache);
  o.calibration.calibrator = calibrator;
  o.calibration.percentile = percentile;
  o.calibration.keep_fp32 = keep_fp32;
  kiln::StatusOr<std::shared_ptr<const kiln::Engine>> e = kiln::Status(kiln::StatusCode::kInternal, "not run");
  kiln::Status saved;
  {
    py::gil_scoped_release nogil;
    e = kiln::BuildFromOnnx(src, o);
    if (e.ok()) saved = kiln::SavePlan(**e, dst);
  }
  PyEngine engine{Check(std::move(e))};
  Check(saved);
  return engine;
}

// One thread at a time: a second thread that uses a context while it is busy gets an error
// instead of a data race.
struct PyExecContext {
  std::shared_ptr<const kiln::Engine> engine;
  std::unique_ptr<kiln::ExecutionContext> ctx;
  std::vector<py::object> bound;  // what each input's binding reads (arrays, strings), alive until rebound
  std::mutex busy;

  std::unique_lock<std::mutex> Lock() {
    std::unique_lock<std::mutex> lock(busy, std::try_to_lock);
    if (!lock.owns_lock())
      throw std::runtime_error("kiln: this context is in use by another thread (create one context per thread)");
    return lock;
  }

  int Index(const py::handle& key) const {
    if (py::isinstance<py::str>(key)) return PyEngine{engine}.InputIndex(key.cast<std::string>());
    const int i = key.cast<int>();
    if (i < 0 || static_cast<size_t>(i) >= engine->inputs().size())
      throw py::index_error("input index " + std::to_string(i) + " is out of range: the model has " +
                            std::to_string(engine->inputs().size()) + " inputs");
    return i;
  }

  void SetInput(const py::handle& key, const py::handle& value) {
    auto lock = Lock();
    const int i = Index(key);
    const kiln::TensorInfo& info = engine->inputs()[static_cast<size_t>(i)];
    py::list keep;
    BindInput(*ctx, i, info, value, keep);
    bound[static_cast<size_t>(i)] = std::move(keep);
  }

  void Run() {
    auto lock = Lock();
    kiln::Status s;
    {
      py::gil_scoped_release nogil;
      s = ctx->Run();
    }
    Check(s);
  }

  py::object Output(const py::handle& key) {
    auto lock = Lock();
    const auto& outs = engine->outputs();
    int i = -1;
    if (py::isinstance<py::str>(key)) {
      const std::string name = key.cast<std::string>();
      for (size_t k = 0; k < outs.size(); ++k)
        if (outs[k].name == name) i = static_cast<int>(k);
      if (i < 0) {
        PyErr_SetString(PyExc_KeyError, ("the model has no output '" + name + "'").c_str());
        throw py::error_already_set();
      }
    } else {
      i = key.cast<int>();
      if (i < 0 || static_cast<size_t>(i) >= outs.size())
        throw py::index_error("output index " + std::to_string(i) + " is out of range: the model has " +
                              std::to_string(outs.size()) + " outputs");
    }
    return OutputValue(*ctx, i, outs[static_cast<size_t>(i)]);
  }
};

PyExecContext* CreateContext(const PyEngine& e) {
  auto c = std::make_unique<PyExecContext>();
  c->engine = e.engine;
  c->ctx = e.engine->CreateContext();
  c->bound.resize(e.engine->inputs().size());
  return c.release();
}

py::dict Run(const PyEngine& self, const py::dict& inputs) {
  const kiln::Engine& e = *self.engine;
  std::unique_ptr<kiln::ExecutionContext> ctx = e.CreateContext();
  py::list keep;  // alive until the run is over
  for (const auto& [key, value] : inputs) {
    if (!py::isinstance<py::str>(key)) throw py::type_error("input names must be str");
    const int i = self.InputIndex(key.cast<std::string>());
    BindInput(*ctx, i, e.inputs()[static_cast<size_t>(i)], value, keep);
  }
  kiln::Status s;
  {
    py::gil_scoped_release nogil;
    s = ctx->Run();
  }
  Check(s);
  py::dict result;
  for (size_t i = 0; i < e.outputs().size(); ++i)
    result[py::str(e.outputs()[i].name)] = OutputValue(*ctx, static_cast<int>(i), e.outputs()[i]);
  return result;
}

std::string Describe(const std::vector<kiln::TensorInfo>& infos) {
  std::ostringstream s;
  for (size_t i = 0; i < infos.size(); ++i) {
    s << (i ? ", " : "") << infos[i].name << ": " << kiln::DataTypeName(infos[i].dtype) << " [";
    for (size_t d = 0; d < infos[i].shape.size(); ++d) s << (d ? "," : "") << infos[i].shape[d];
    s << "]";
  }
  return s.str();
}

}  // namespace

PYBIND11_MODULE(kiln, m) {
  m.doc() = "kiln: load an ONNX model or a kiln plan, optimize it, and run it on NumPy arrays.";
  m.attr("__version__") = KILN_VERSION;

  py::class_<PyEngine>(m, "Engine",
                       "A built model: immutable, shared by any number of threads. Each thread that runs it "
                       "concurrently uses its own context (create_context()); run() makes a temporary one.")
      .def_property_readonly("inputs", [](const PyEngine& e) { return Infos(e.engine->inputs()); },
                             "[(name, numpy dtype, shape)] of the graph inputs; -1 marks a dynamic dimension")
      .def_property_readonly("outputs", [](const PyEngine& e) { return Infos(e.engine->outputs()); },
                             "[(name, numpy dtype, shape)] of the graph outputs")
      .def("run", &Run, py::arg("inputs"),
           "Runs the model on {name: array} (every input) and returns {name: array} of the outputs, "
           "in graph order. Releases the GIL while it runs.")
      .def("create_context", &CreateContext, py::return_value_policy::take_ownership,
           "A context for one thread at a time: set_input(), run(), output().")
      .def("save", [](const PyEngine& e, const py::object& path) {
             const std::string p = FsPath(path);
             kiln::Status s;
             {
               py::gil_scoped_release nogil;
               s = kiln::SavePlan(*e.engine, p);
             }
             Check(s);
           }, py::arg("plan_path"), "Writes the engine as a plan file, which load() reads without the optimizer.")
      .def("__repr__", [](const PyEngine& e) {
        return "<kiln.Engine inputs=[" + Describe(e.engine->inputs()) + "] outputs=[" + Describe(e.engine->outputs()) + "]>";
      });

  py::class_<PyExecContext>(m, "ExecutionContext",
                        "Per-thread bindings and results of one Engine. Bound arrays are read in place during "
                        "run(), so changing them between runs changes the next result.")
      .def("set_input", &PyExecContext::SetInput, py::arg("name_or_index"), py::arg("array"),
           "Binds an input by name or index (dtype and shape are checked against the engine).")
      .def("run", &PyExecContext::Run, "Runs the model on the bound inputs. Releases the GIL while it runs.")
      .def("output", &PyExecContext::Output, py::arg("name_or_index"),
           "An output of the last run(), by name or index, as a new array.");

  m.def("load", &Load, py::arg("path"), py::arg("shapes") = py::none(), py::arg("optimize") = true,
        py::arg("precision") = "fp32", py::arg("threads") = 0, py::arg("backend") = "cpu",
        py::arg("profiles") = py::none(), py::arg("batch_parallel") = "auto", py::arg("strict") = false,
        "Loads a .plan file or builds an .onnx model (shapes: {input name: shape} for inputs with "
        "dynamic dimensions; the others get 1 for each dynamic dimension; strict=True: an error if any layer would "
        "run on a reference implementation).");
  m.def("build", &Build, py::arg("onnx_path"), py::arg("plan_path"), py::arg("shapes") = py::none(),
        py::arg("optimize") = true, py::arg("precision") = "fp32", py::arg("threads") = 0, py::arg("backend") = "cpu",
        py::arg("profiles") = py::none(), py::arg("batch_parallel") = "auto", py::arg("strict") = false,
        py::arg("calibration") = py::none(), py::arg("calibrator") = "entropy", py::arg("calibration_cache") = py::none(),
        py::arg("percentile") = 99.99, py::arg("keep_fp32") = std::vector<std::string>(),
        "Builds an engine from an ONNX model, writes it to plan_path and returns it. precision='int8': INT8 "
        "convolutions/matmuls calibrated on `calibration` (an iterable of {input name: array} batches) with "
        "`calibrator` ('entropy', 'percentile', 'minmax'), writing `calibration_cache` when given; without "
        "`calibration`, the ranges come from `calibration_cache`.");
}
