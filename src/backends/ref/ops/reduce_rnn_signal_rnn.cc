// RNN, GRU and LSTM, as the ONNX operator definitions state them (gate orders: GRU z,r,h;
// LSTM i,o,f,c; peepholes i,o,f), in double. Forward, reverse and bidirectional; layout 0
// ([seq, batch, ...]) and 1 ([batch, seq, ...]); per-batch sequence_lens.
#include <cmath>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

using Act = std::function<double(double)>;

// One activation with its alpha/beta taken, as ONNX Runtime does, from the front of the
// activation_alpha/activation_beta lists only when the function uses them ("consumed in the
// order of the activation functions"); absent values take the function's default.
StatusOr<Act> MakeActivation(const std::string& given, std::span<const float>& alphas, std::span<const float>& betas) {
  std::string name = given;  // matched case-insensitively
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto take = [](std::span<const float>& from, double dflt) {
    if (from.empty()) return dflt;
    const double v = from.front();
    from = from.subspan(1);
    return v;
  };
  if (name == "sigmoid") return Act([](double x) { return 1 / (1 + std::exp(-x)); });
  if (name == "tanh") return Act([](double x) { return std::tanh(x); });
  if (name == "relu") return Act([](double x) { return x > 0 ? x : 0.0; });
  if (name == "softsign") return Act([](double x) { return x / (1 + std::fabs(x)); });
  if (name == "softplus") return Act([](double x) { return std::log1p(std::exp(x)); });
  if (name == "leakyrelu") { double al = take(alphas, 0.01); return Act([al](double x) { return x >= 0 ? x : al * x; }); }
  if (name == "thresholdedrelu") { double al = take(alphas, 1.0); return Act([al](double x) { return x > al ? x : 0.0; }); }
  if (name == "elu") { double al = take(alphas, 1.0); return Act([al](double x) { return x >= 0 ? x : al * (std::exp(x) - 1); }); }
  if (name == "scaledtanh") {
    double al = take(alphas, 1.0), be = take(betas, 1.0);
    return Act([al, be](double x) { return al * std::tanh(be * x); });
  }
  if (name == "hardsigmoid") {
    double al = take(alphas, 0.2), be = take(betas, 0.5);
    return Act([al, be](double x) { return std::max(0.0, std::min(1.0, al * x + be)); });
  }
  if (name == "affine") {
    double al = take(alphas, 1.0), be = take(betas, 0.0);
    return Act([al, be](double x) { return al * x + be; });
  }
  return InvalidArgument("attribute 'activations': unknown activation '", given, "'");
}

std::vector<double> D(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

Status RecurrentKernel(RefContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const int gates = op == "RNN" ? 1 : op == "GRU" ? 3 : 4;
  const int n_act = op == "RNN" ? 1 : op == "GRU" ? 2 : 3;
  for (int i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
  KILN_ASSIGN_OR_RETURN(int64_t layout, ctx.attrs().GetInt("layout", 0));
  KILN_ASSIGN_OR_RETURN(std::string direction, ctx.attrs().GetString("direction", "forward"));
  KILN_ASSIGN_OR_RETURN(int64_t hidden, ctx.attrs().RequireInt("hidden_size"));
  KILN_ASSIGN_OR_RETURN(int64_t lbr, ctx.attrs().GetInt("linear_before_reset", 0));
  KILN_ASSIGN_OR_RETURN(int64_t input_forget, ctx.attrs().GetInt("input_forget", 0));
  const bool has_clip = ctx.attrs().has("clip");
  KILN_ASSIGN_OR_RETURN(float clip, ctx.attrs().GetFloat("clip", 0.f));
  const Tensor& x = ctx.input(0);
  if (x.rank() != 3) return InvalidArgument("input 'X' must be 3-D, got ", x.ShapeString());
  for (int i = 0; i < ctx.num_inputs(); ++i)  // every input but sequence_lens holds floats
    if (i != 4 && ctx.has_input(i) && !IsFloat(ctx.input(i).dtype())) return InvalidArgument("input ", i, " must be a float tensor");
  if (has_clip && !(clip > 0)) return InvalidArgument("attribute 'clip' must be positive");
  const int64_t seq = layout ? x.dim(1) : x.dim(0), batch = layout ? x.dim(0) : x.dim(1), in = x.dim(2);
  const int dirs = direction == "bidirectional" ? 2 : 1;
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    return InvalidArgument("unknown direction '", direction, "'");
  const Tensor& wt = ctx.input(1);
  const Tensor& rt = ctx.input(2);
  if (wt.dims() != std::vector<int64_t>{dirs, gates * hidden, in}) return InvalidArgument("input 'W' must be [", dirs, ", ", gates * hidden, ", ", in, "], got ", wt.ShapeString());
  if (rt.dims() != std::vector<int64_t>{dirs, gates * hidden, hidden}) return InvalidArgument("input 'R' must be [", dirs, ", ", gates * hidden, ", ", hidden, "]");
  // Activations per direction.
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ctx.attrs().GetStrings("activations"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> alphas, ctx.attrs().GetFloats("activation_alpha"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> betas, ctx.attrs().GetFloats("activation_beta"));
  std::vector<std::string> dflt = op == "RNN" ? std::vector<std::string>{"Tanh"} : op == "GRU" ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                                              : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
  if (names.empty()) for (int d = 0; d < dirs; ++d) names.insert(names.end(), dflt.begin(), dflt.end());
  if (static_cast<int>(names.size()) != n_act * dirs) return InvalidArgument("attribute 'activations' needs ", n_act * dirs, " entries");
  std::vector<Act> acts;
  std::span<const float> alpha_left(alphas), beta_left(betas);
  for (const std::string& name : names) {
    KILN_ASSIGN_OR_RETURN(Act a, MakeActivation(name, alpha_left, beta_left));
    acts.push_back(std::move(a));
  }
  const std::vector<double> xd = D(x), w = D(wt), r = D(rt);
  std::vector<double> bias(static_cast<size_t>(dirs * 2 * gates * hidden), 0.0);
  if (ctx.has_input(3)) {
    if (ctx.input(3).numel() != static_cast<int64_t>(bias.size())) return InvalidArgument("input 'B' must be [", dirs, ", ", 2 * gates * hidden, "]");
    bias = D(ctx.input(3));
  }
  std::vector<int64_t> lens(static_cast<size_t>(batch), seq);
  if (ctx.has_input(4)) {
    KILN_ASSIGN_OR_RETURN(lens, ctx.input(4).ToInt64Vector());
    if (static_cast<int64_t>(lens.size()) != batch) return InvalidArgument("input 'sequence_lens' must have ", batch, " entries");
    for (int64_t l : lens) if (l < 0 || l > seq) return InvalidArgument("input 'sequence_lens' holds a length outside [0, ", seq, "]");
  }
  auto state_in = [&](int idx) -> StatusOr<std::vector<double>> {
    std::vector<double> s(static_cast<size_t>(dirs * batch * hidden), 0.0);
    if (!ctx.has_input(idx)) return s;
    const Tensor& t = ctx.input(idx);
    if (t.numel() != static_cast<int64_t>(s.size())) return InvalidArgument("initial state (input ", idx, ") has the wrong size");
    std::vector<double> v = D(t);
    if (!layout) return v;
    for (int d = 0; d < dirs; ++d)  // [batch, dirs, hidden] -> [dirs, batch, hidden]
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t h = 0; h < hidden; ++h) s[static_cast<size_t>((d * batch + b) * hidden + h)] = v[static_cast<size_t>((b * dirs + d) * hidden + h)];
    return s;
  };
  KILN_ASSIGN_OR_RETURN(std::vector<double> h_state, state_in(5));
  std::vector<double> c_state(h_state.size(), 0.0), peep(static_cast<size_t>(dirs * 3 * hidden), 0.0);
  if (op == "LSTM") {
    KILN_ASSIGN_OR_RETURN(c_state, state_in(6));
    if (ctx.has_input(7)) {
      if (ctx.input(7).numel() != static_cast<int64_t>(peep.size())) return InvalidArgument("input 'P' must be [", dirs, ", ", 3 * hidden, "]");
      peep = D(ctx.input(7));
    }
  }
  std::vector<double> y(static_cast<size_t>(seq * dirs * batch * hidden), 0.0);
  auto clipped = [&](double v) { return has_clip ? std::max<double>(-clip, std::min<double>(clip, v)) : v; };
  for (int d = 0; d < dirs; ++d) {
    const bool reverse = direction == "reverse" || d == 1;
    const Act& f = acts[static_cast<size_t>(d * n_act)];
    const Act& g = acts[static_cast<size_t>(d * n_act + (n_act > 1 ? 1 : 0))];
    const Act& hact = acts[static_cast<size_t>(d * n_act + (n_act > 2 ? 2 : 0))];
    const double* W = &w[static_cast<size_t>(d * gates * hidden * in)];
    const double* R = &r[static_cast<size_t>(d * gates * hidden * hidden)];
    const double* Wb = &bias[static_cast<size_t>(d * 2 * gates * hidden)];
    const double* Rb = Wb + gates * hidden;
    const double* P = &peep[static_cast<size_t>(d * 3 * hidden)];
    for (int64_t b = 0; b < batch; ++b) {
      double* H = &h_state[static_cast<size_t>((d * batch + b) * hidden)];
      double* C = &c_state[static_cast<size_t>((d * batch + b) * hidden)];
      for (int64_t step = 0; step < lens[static_cast<size_t>(b)]; ++step) {
        const int64_t t = reverse ? lens[static_cast<size_t>(b)] - 1 - step : step;
        const double* xt = &xd[static_cast<size_t>((layout ? b * seq + t : t * batch + b) * in)];
        // xw[g*hidden + j] = Xt . W_g[j] + Wb_g[j];  hr[...] = H . R_g[j] + Rb_g[j]
        std::vector<double> xw(static_cast<size_t>(gates * hidden)), hr(static_cast<size_t>(gates * hidden));
        for (int64_t j = 0; j < gates * hidden; ++j) {
          double a = Wb[j], c = Rb[j];
          for (int64_t k = 0; k < in; ++k) a += xt[k] * W[j * in + k];
          for (int64_t k = 0; k < hidden; ++k) c += H[k] * R[j * hidden + k];
          xw[static_cast<size_t>(j)] = a;
          hr[static_cast<size_t>(j)] = c;
        }
        std::vector<double> hn(static_cast<size_t>(hidden));
        for (int64_t j = 0; j < hidden; ++j) {
          const size_t k = static_cast<size_t>(j);
          if (op == "RNN") {
            hn[k] = f(clipped(xw[k] + hr[k]));
          } else if (op == "GRU") {
            const double z = f(clipped(xw[k] + hr[k]));
            const double rg = f(clipped(xw[k + static_cast<size_t>(hidden)] + hr[k + static_cast<size_t>(hidden)]));
            const size_t hh = k + 2 * static_cast<size_t>(hidden);
            double pre;
            if (lbr) {
              pre = xw[hh] + rg * hr[hh];
            } else {  // (r ⊙ H) R_h + Rb_h
              double acc = Rb[2 * hidden + j];
              for (int64_t q = 0; q < hidden; ++q) {
                const double rq = f(clipped(xw[static_cast<size_t>(hidden + q)] + hr[static_cast<size_t>(hidden + q)]));
                acc += rq * H[q] * R[(2 * hidden + j) * hidden + q];
              }
              pre = xw[hh] + acc;
            }
            const double hc = g(clipped(pre));
            hn[k] = (1 - z) * hc + z * H[j];
          } else {  // LSTM: gates i, o, f, c
            const size_t hs = static_cast<size_t>(hidden);
            double i_g = f(clipped(xw[k] + hr[k] + P[j] * C[j]));
            double f_g = f(clipped(xw[k + 2 * hs] + hr[k + 2 * hs] + P[2 * hidden + j] * C[j]));
            if (input_forget) f_g = 1 - i_g;
            const double c_in = g(clipped(xw[k + 3 * hs] + hr[k + 3 * hs]));
            const double c_new = f_g * C[j] + i_g * c_in;
            const double o_g = f(clipped(xw[k + hs] + hr[k + hs] + P[hidden + j] * c_new));
            hn[k] = o_g * hact(c_new);
            C[j] = c_new;
          }
        }
        for (int64_t j = 0; j < hidden; ++j) H[j] = hn[static_cast<size_t>(j)];
        for (int64_t j = 0; j < hidden; ++j) {
          const int64_t at = layout ? ((b * seq + t) * dirs + d) * hidden + j : ((t * dirs + d) * batch + b) * hidden + j;
          y[static_cast<size_t>(at)] = H[j];
        }
      }
    }
  }
  const DType dt = x.dtype();
  auto state_out = [&](const std::vector<double>& s) {
    std::vector<int64_t> dims = layout ? std::vector<int64_t>{batch, dirs, hidden} : std::vector<int64_t>{dirs, batch, hidden};
    Tensor t(dt, dims);
    for (int d = 0; d < dirs; ++d)
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t h = 0; h < hidden; ++h) {
          const int64_t at = layout ? (b * dirs + d) * hidden + h : (d * batch + b) * hidden + h;
          ref::StoreDouble(t, at, s[static_cast<size_t>((d * batch + b) * hidden + h)]);
        }
    return t;
  };
  if (ctx.has_output(0)) {
    std::vector<int64_t> dims = layout ? std::vector<int64_t>{batch, seq, dirs, hidden} : std::vector<int64_t>{seq, dirs, batch, hidden};
    Tensor yt(dt, dims);
    for (int64_t i = 0; i < yt.numel(); ++i) ref::StoreDouble(yt, i, y[static_cast<size_t>(i)]);
    ctx.set_output(0, std::move(yt));
  }
  if (ctx.has_output(1)) ctx.set_output(1, state_out(h_state));
  if (ctx.has_output(2) && op == "LSTM") ctx.set_output(2, state_out(c_state));
  return Status::OK();
}

}  // namespace

void RegisterRecurrentKernels(RefKernelRegistry& r) {
  for (const char* op : {"RNN", "GRU", "LSTM"}) r.Add("", op, &RecurrentKernel);
}

}  // namespace kiln
