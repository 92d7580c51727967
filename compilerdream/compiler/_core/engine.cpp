// The native compiler engine: one LLVM module held in memory, optimized in
// place by new-pass-manager pipelines, with CompilerGym's observations
// (IrInstructionCount, Autophase, InstCount, object .text size) computed
// natively. Exposed to Python through pybind11 as compilerdream.compiler._core._engine.
//
// Every Module owns a shared LLVMContext: modules loaded from different
// benchmarks get different contexts (so types and constants of finished
// benchmarks are freed), while clones made for fork/reset share their parent's.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llvm/ADT/StringRef.h"
#include "llvm/Analysis/CFG.h"
#include "llvm/Analysis/CGSCCPassManager.h"
#include "llvm/Analysis/LoopAnalysisManager.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/IR/BasicBlock.h"
#include "llvm/IR/CFG.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/DebugInfo.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/InstVisitor.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/PassManager.h"
#include "llvm/IR/Verifier.h"
#include "llvm/IRReader/IRReader.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/Transforms/Utils/Cloning.h"
#if LLVM_VERSION_MAJOR >= 22
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"
#else
#include "llvm/TargetParser/Host.h"
#endif

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

// ---------------------------------------------------------------------------
// Target machines, one per triple, created on first use. Passes see the same
// TargetMachine (generic CPU, no extra features) as `opt -passes=...`, so our
// instruction counts equal opt's on the same input.
// ---------------------------------------------------------------------------

void initializeTargetsOnce() {
  static std::once_flag flag;
  std::call_once(flag, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    llvm::InitializeAllAsmParsers();
  });
}

std::string effectiveTriple(const llvm::Module &M) {
#if LLVM_VERSION_MAJOR >= 21
  std::string triple = M.getTargetTriple().str();
#else
  std::string triple = M.getTargetTriple();
#endif
  if (triple.empty()) triple = llvm::sys::getDefaultTargetTriple();
  return triple;
}

llvm::TargetMachine *targetMachineFor(const std::string &triple) {
  initializeTargetsOnce();
  static std::map<std::string, std::unique_ptr<llvm::TargetMachine>> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(triple);
  if (it != cache.end()) return it->second.get();
  std::string error;
#if LLVM_VERSION_MAJOR >= 21
  // From LLVM 21 the target APIs take a Triple; the string overloads are deprecated.
  const llvm::Triple tripleObj(triple);
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(tripleObj, error);
#else
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
#endif
  llvm::TargetMachine *tm = nullptr;
  if (target) {
    llvm::TargetOptions options;
#if LLVM_VERSION_MAJOR >= 21
    tm = target->createTargetMachine(tripleObj, "", "", options, std::nullopt);
#else
    tm = target->createTargetMachine(triple, "", "", options, std::nullopt);
#endif
  }
  cache[triple].reset(tm);  // nullptr is cached too: unknown triples run without a target
  return tm;
}

// ---------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------

std::string errorToString(llvm::Error err) {
  std::string msg;
  llvm::handleAllErrors(std::move(err), [&](const llvm::ErrorInfoBase &e) { msg = e.message(); });
  return msg;
}

struct PipelineRunner {
  llvm::LoopAnalysisManager LAM;
  llvm::FunctionAnalysisManager FAM;
  llvm::CGSCCAnalysisManager CGAM;
  llvm::ModuleAnalysisManager MAM;
  llvm::PipelineTuningOptions PTO;
  llvm::PassInstrumentationCallbacks PIC;
  std::unique_ptr<llvm::PassBuilder> PB;

  explicit PipelineRunner(llvm::TargetMachine *tm, bool withNames = false) {
    PB = std::make_unique<llvm::PassBuilder>(tm, PTO, std::nullopt, withNames ? &PIC : nullptr);
    PB->registerModuleAnalyses(MAM);
    PB->registerCGSCCAnalyses(CGAM);
    PB->registerFunctionAnalyses(FAM);
    PB->registerLoopAnalyses(LAM);
    PB->crossRegisterProxies(LAM, FAM, CGAM, MAM);
  }

  llvm::ModulePassManager parse(const std::string &pipeline) {
    llvm::ModulePassManager MPM;
    if (llvm::Error err = PB->parsePassPipeline(MPM, pipeline)) {
      throw py::value_error("invalid pass pipeline '" + pipeline + "': " + errorToString(std::move(err)));
    }
    return MPM;
  }
};

// Returns true when some pass reported a change (not all analyses preserved).
// opt's own command-line options (e.g. "-force-attribute=minsize", "-inline-threshold=0") for
// one pipeline run, reset to their defaults afterwards: `opt OPTIONS -passes=P` sees them the
// same way. LLVM keeps them in process-wide globals, so a module's apply() with options must
// not run concurrently with another apply() in the same process (the worker runs one at a time).
class ScopedOptions {
 public:
  explicit ScopedOptions(const std::vector<std::string> &options) {
    if (options.empty()) return;
    llvm::StringMap<llvm::cl::Option *> &registered = llvm::cl::getRegisteredOptions();
    for (const std::string &text : options) {
      llvm::StringRef rest(text);
      if (!rest.consume_front("-")) fail("opt option '" + text + "' does not start with '-'");
      rest.consume_front("-");
      auto [name, value] = rest.split('=');
      auto found = registered.find(name);
      if (name.empty() || found == registered.end()) fail("unknown opt option '" + text + "'");
      llvm::cl::Option *option = found->second;
      touched_.push_back(option);
      if (option->addOccurrence(0, name, value)) fail("bad value in opt option '" + text + "'");
    }
  }
  ~ScopedOptions() { resetAll(); }
  ScopedOptions(const ScopedOptions &) = delete;
  ScopedOptions &operator=(const ScopedOptions &) = delete;

 private:
  [[noreturn]] void fail(const std::string &message) {
    resetAll();
    throw std::invalid_argument(message);
  }
  void resetAll() {
    for (llvm::cl::Option *option : touched_) option->reset();
    touched_.clear();
  }
  std::vector<llvm::cl::Option *> touched_;
};

bool runPipeline(llvm::Module &M, const std::string &pipeline) {
  PipelineRunner runner(targetMachineFor(effectiveTriple(M)));
  llvm::ModulePassManager MPM = runner.parse(pipeline);
  llvm::PreservedAnalyses PA = MPM.run(M, runner.MAM);
  return !PA.areAllPreserved();
}

// The textual pipeline LLVM itself prints for `pipeline` (what
// `opt -print-pipeline-passes` shows): every pass wrapped in its adaptor, so
// several such strings joined with ',' run one after another at module level.
std::string canonicalPipeline(const std::string &pipeline) {
  PipelineRunner runner(targetMachineFor(llvm::sys::getDefaultTargetTriple()), /*withNames=*/true);
  llvm::ModulePassManager MPM = runner.parse(pipeline);
  std::string out;
  llvm::raw_string_ostream os(out);
  MPM.printPipeline(os, [&](llvm::StringRef className) {
    llvm::StringRef name = runner.PIC.getPassNameForClassName(className);
    return name.empty() ? className : name;
  });
  os.flush();
  return out;
}

// ---------------------------------------------------------------------------
// Features: CompilerGym's Autophase (56) and InstCount (70), exact rules in
// shared/spec/AUTOPHASE.md. Both walk every Function in module order,
// declarations included.
// ---------------------------------------------------------------------------

constexpr int kNumAutophase = 56;
constexpr int kNumInstCount = 70;

// LLVM-10 opcode order (Instruction.def), the InstCount layout after its 3 totals.
const unsigned kInstCountOpcodes[67] = {
    llvm::Instruction::Ret, llvm::Instruction::Br, llvm::Instruction::Switch, llvm::Instruction::IndirectBr,
    llvm::Instruction::Invoke, llvm::Instruction::Resume, llvm::Instruction::Unreachable,
    llvm::Instruction::CleanupRet, llvm::Instruction::CatchRet, llvm::Instruction::CatchSwitch,
    llvm::Instruction::CallBr, llvm::Instruction::FNeg, llvm::Instruction::Add, llvm::Instruction::FAdd,
    llvm::Instruction::Sub, llvm::Instruction::FSub, llvm::Instruction::Mul, llvm::Instruction::FMul,
    llvm::Instruction::UDiv, llvm::Instruction::SDiv, llvm::Instruction::FDiv, llvm::Instruction::URem,
    llvm::Instruction::SRem, llvm::Instruction::FRem, llvm::Instruction::Shl, llvm::Instruction::LShr,
    llvm::Instruction::AShr, llvm::Instruction::And, llvm::Instruction::Or, llvm::Instruction::Xor,
    llvm::Instruction::Alloca, llvm::Instruction::Load, llvm::Instruction::Store,
    llvm::Instruction::GetElementPtr, llvm::Instruction::Fence, llvm::Instruction::AtomicCmpXchg,
    llvm::Instruction::AtomicRMW, llvm::Instruction::Trunc, llvm::Instruction::ZExt, llvm::Instruction::SExt,
    llvm::Instruction::FPToUI, llvm::Instruction::FPToSI, llvm::Instruction::UIToFP, llvm::Instruction::SIToFP,
    llvm::Instruction::FPTrunc, llvm::Instruction::FPExt, llvm::Instruction::PtrToInt,
    llvm::Instruction::IntToPtr, llvm::Instruction::BitCast, llvm::Instruction::AddrSpaceCast,
    llvm::Instruction::CleanupPad, llvm::Instruction::CatchPad, llvm::Instruction::ICmp,
    llvm::Instruction::FCmp, llvm::Instruction::PHI, llvm::Instruction::Call, llvm::Instruction::Select,
    llvm::Instruction::UserOp1, llvm::Instruction::UserOp2, llvm::Instruction::VAArg,
    llvm::Instruction::ExtractElement, llvm::Instruction::InsertElement, llvm::Instruction::ShuffleVector,
    llvm::Instruction::ExtractValue, llvm::Instruction::InsertValue, llvm::Instruction::LandingPad,
    llvm::Instruction::Freeze,
};

// LLVM-10's UnaryInstruction::classof: freeze is not a unary instruction there.
bool isLlvm10Unary(const llvm::Instruction &I) {
  if (I.getOpcode() == llvm::Instruction::Freeze) return false;
  return llvm::isa<llvm::UnaryInstruction>(I);
}

std::array<int64_t, kNumAutophase> computeAutophase(const llvm::Module &M) {
  std::array<int64_t, kNumAutophase> f{};
  enum {
    BBNumArgsHi, BBNumArgsLo, onePred, onePredOneSuc, onePredTwoSuc, oneSuccessor, twoPred, twoPredOneSuc,
    twoEach, twoSuccessor, morePreds, BB03Phi, BBHiPhi, BBNoPhi, BeginPhi, BranchCount, returnInt,
    CriticalCount, NumEdges, const32Bit, const64Bit, numConstZeroes, numConstOnes, UncondBranches,
    binaryConstArg, NumAShrInst, NumAddInst, NumAllocaInst, NumAndInst, BlockMid, BlockLow, NumBitCastInst,
    NumBrInst, NumCallInst, NumGetElementPtrInst, NumICmpInst, NumLShrInst, NumLoadInst, NumMulInst,
    NumOrInst, NumPHIInst, NumRetInst, NumSExtInst, NumSelectInst, NumShlInst, NumStoreInst, NumSubInst,
    NumTruncInst, NumXorInst, NumZExtInst, TotalBlocks, TotalInsts, TotalMemInst, TotalFuncs, ArgsPhi,
    testUnary
  };
  for (const llvm::Function &F : M) {
    ++f[TotalFuncs];
    for (const llvm::BasicBlock &BB : F) {
      ++f[TotalBlocks];
      const llvm::Instruction *T = BB.getTerminator();
      int succ = T ? static_cast<int>(T->getNumSuccessors()) : 0;
      int preds = 0;
      for (auto it = llvm::pred_begin(&BB), end = llvm::pred_end(&BB); it != end; ++it) ++preds;
      int64_t phiArgs = 0, numPhis = 0, n = 0;
      for (const llvm::Instruction &I : BB) {
        ++n;
        if (auto *phi = llvm::dyn_cast<llvm::PHINode>(&I)) {
          ++numPhis;
          phiArgs += phi->getNumIncomingValues();
        }
      }
      if (phiArgs > 5) ++f[BBNumArgsHi];
      else if (phiArgs >= 1) ++f[BBNumArgsLo];
      if (preds == 1) {
        ++f[onePred];
        if (succ == 1) ++f[onePredOneSuc];
        else if (succ == 2) ++f[onePredTwoSuc];
      } else if (preds == 2) {
        ++f[twoPred];
        if (succ == 1) ++f[twoPredOneSuc];
        else if (succ == 2) ++f[twoEach];
      } else if (preds > 2) {
        ++f[morePreds];
      }
      if (succ == 1) ++f[oneSuccessor];
      else if (succ == 2) ++f[twoSuccessor];
      if (numPhis == 0) ++f[BBNoPhi];
      else if (numPhis <= 3) ++f[BB03Phi];
      else ++f[BBHiPhi];
      if (!BB.empty() && llvm::isa<llvm::PHINode>(BB.front())) ++f[BeginPhi];
      if (T) {
        f[NumEdges] += succ;
        for (int i = 0; i < succ; ++i)
          if (llvm::isCriticalEdge(T, i)) ++f[CriticalCount];
      }
      if (n < 15) ++f[BlockLow];
      else if (n <= 500) ++f[BlockMid];

      for (const llvm::Instruction &I : BB) {
        ++f[TotalInsts];
        auto countConstant = [&f](const llvm::ConstantInt *c) {
          unsigned bits = c->getBitWidth();
          if (bits == 32) ++f[const32Bit];
          else if (bits == 64) ++f[const64Bit];
          if (c->getValue() == 1) ++f[numConstOnes];
          else if (c->isZero()) ++f[numConstZeroes];
        };
        for (unsigned i = 0; i < I.getNumOperands(); ++i) {
          if (auto *c = llvm::dyn_cast<llvm::ConstantInt>(I.getOperand(i))) countConstant(c);
        }
#if LLVM_VERSION_MAJOR >= 22
        // LLVM 22 keeps switch case values beside the operands, not among them;
        // LLVM 10 (and 19) counted them as operands, so walk them explicitly.
        if (auto *sw = llvm::dyn_cast<llvm::SwitchInst>(&I)) {
          for (const auto &kase : sw->cases()) countConstant(kase.getCaseValue());
        }
#endif
        if (llvm::isa<llvm::BinaryOperator>(I)) {
          if (llvm::isa<llvm::Constant>(I.getOperand(0)) || llvm::isa<llvm::Constant>(I.getOperand(1)))
            ++f[binaryConstArg];
        }
        if (isLlvm10Unary(I)) ++f[testUnary];
        switch (I.getOpcode()) {
          case llvm::Instruction::Br:
            ++f[BranchCount];
            ++f[NumBrInst];
            if (llvm::cast<llvm::BranchInst>(I).isUnconditional()) ++f[UncondBranches];
            break;
          case llvm::Instruction::Call: {
            ++f[NumCallInst];
            ++f[TotalMemInst];
            const llvm::Function *callee = llvm::cast<llvm::CallInst>(I).getCalledFunction();
            if (callee && callee->getReturnType()->isIntegerTy()) ++f[returnInt];
            break;
          }
          case llvm::Instruction::Invoke: ++f[TotalMemInst]; break;
          case llvm::Instruction::AShr: ++f[NumAShrInst]; break;
          case llvm::Instruction::Add: ++f[NumAddInst]; break;
          case llvm::Instruction::Alloca: ++f[NumAllocaInst]; ++f[TotalMemInst]; break;
          case llvm::Instruction::And: ++f[NumAndInst]; break;
          case llvm::Instruction::BitCast: ++f[NumBitCastInst]; break;
          case llvm::Instruction::GetElementPtr: ++f[NumGetElementPtrInst]; ++f[TotalMemInst]; break;
          case llvm::Instruction::ICmp: ++f[NumICmpInst]; break;
          case llvm::Instruction::LShr: ++f[NumLShrInst]; break;
          case llvm::Instruction::Load: ++f[NumLoadInst]; ++f[TotalMemInst]; break;
          case llvm::Instruction::Mul: ++f[NumMulInst]; break;
          case llvm::Instruction::Or: ++f[NumOrInst]; break;
          case llvm::Instruction::PHI:
            ++f[NumPHIInst];
            f[ArgsPhi] += llvm::cast<llvm::PHINode>(I).getNumIncomingValues();
            break;
          case llvm::Instruction::Ret: ++f[NumRetInst]; break;
          case llvm::Instruction::SExt: ++f[NumSExtInst]; break;
          case llvm::Instruction::Select: ++f[NumSelectInst]; break;
          case llvm::Instruction::Shl: ++f[NumShlInst]; break;
          case llvm::Instruction::Store: ++f[NumStoreInst]; ++f[TotalMemInst]; break;
          case llvm::Instruction::Sub: ++f[NumSubInst]; break;
          case llvm::Instruction::Trunc: ++f[NumTruncInst]; break;
          case llvm::Instruction::Xor: ++f[NumXorInst]; break;
          case llvm::Instruction::ZExt: ++f[NumZExtInst]; break;
          default: break;
        }
      }
    }
  }
  return f;
}

std::array<int64_t, kNumInstCount> computeInstCount(const llvm::Module &M) {
  std::array<int64_t, kNumInstCount> f{};
  int64_t byOpcode[128] = {0};
  for (const llvm::Function &F : M) {
    ++f[2];
    for (const llvm::BasicBlock &BB : F) {
      ++f[1];
      for (const llvm::Instruction &I : BB) {
        ++f[0];
        unsigned op = I.getOpcode();
        if (op < 128) ++byOpcode[op];
      }
    }
  }
  for (int i = 0; i < 67; ++i) f[3 + i] = byOpcode[kInstCountOpcodes[i]];
  return f;
}

template <size_t N>
py::array_t<int64_t> toNumpy(const std::array<int64_t, N> &values) {
  py::array_t<int64_t> out(N);
  auto view = out.mutable_unchecked<1>();
  for (size_t i = 0; i < N; ++i) view(i) = values[i];
  return out;
}

// Give every value of a clone the use-list order of its original (values shared
// by both modules, such as ConstantInts, are skipped: they have one use list).
void copyUseListOrders(llvm::ValueToValueMapTy &vmap) {
  llvm::DenseMap<std::pair<const llvm::User *, unsigned>, unsigned> position;
  for (auto entry : vmap) {
    const llvm::Value *original = entry.first;
    llvm::Value *copy = entry.second;
    if (!copy || copy == original || !original->hasNUsesOrMore(2)) continue;
    position.clear();
    unsigned index = 0;
    for (const llvm::Use &use : original->uses()) {
      if (llvm::Value *user = vmap.lookup(use.getUser()))
        position[{llvm::cast<llvm::User>(user), use.getOperandNo()}] = index;
      ++index;
    }
    auto rank = [&](const llvm::Use &use) {
      auto it = position.find({use.getUser(), use.getOperandNo()});
      return it == position.end() ? ~0u : it->second;
    };
    copy->sortUseList([&](const llvm::Use &l, const llvm::Use &r) { return rank(l) < rank(r); });
  }
}

// ---------------------------------------------------------------------------
// The module handle
// ---------------------------------------------------------------------------

class EngineModule {
 public:
  EngineModule(std::shared_ptr<llvm::LLVMContext> ctx, std::unique_ptr<llvm::Module> module, bool hadDebugInfo)
      : ctx_(std::move(ctx)), module_(std::move(module)), hadDebugInfo_(hadDebugInfo) {}

  ~EngineModule() { module_.reset(); }  // the module must die before its context

  static std::unique_ptr<EngineModule> load(const py::bytes &data, const std::string &name, bool strip) {
    std::string buffer = data;
    auto ctx = std::make_shared<llvm::LLVMContext>();
    std::unique_ptr<llvm::Module> M;
    bool hadDebug = false;
    {
      py::gil_scoped_release release;
      llvm::SMDiagnostic diag;
      auto mb = llvm::MemoryBuffer::getMemBuffer(llvm::StringRef(buffer.data(), buffer.size()), name, false);
      M = llvm::parseIR(mb->getMemBufferRef(), diag, *ctx);
      if (!M) {
        std::string msg;
        llvm::raw_string_ostream os(msg);
        diag.print(nullptr, os, false);
        os.flush();
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        // The diagnostic quotes the offending line: for a binary file that is not bitcode,
        // arbitrary bytes that are not valid UTF-8 (and would fail as a Python str).
        for (char &c : msg)
          if (static_cast<unsigned char>(c) >= 0x80 || (c < 0x20 && c != '\n' && c != '\t')) c = '?';
        py::gil_scoped_acquire acquire;
        throw py::value_error(msg.empty() ? "could not parse module" : msg);
      }
      if (strip) {
        // CompilerGym's load-time preprocessing (AUTOPHASE.md §0): no debug info,
        // no named metadata. We keep llvm.module.flags, which `opt` would see on
        // the user's file, so that printed pipelines reproduce our counts.
        hadDebug = llvm::StripDebugInfo(*M);
        std::vector<llvm::NamedMDNode *> named;
        for (llvm::NamedMDNode &nmd : M->named_metadata())
          if (nmd.getName() != "llvm.module.flags") named.push_back(&nmd);
        for (llvm::NamedMDNode *nmd : named) M->eraseNamedMetadata(nmd);
        M->setModuleIdentifier("-");
        M->setSourceFileName("-");
      }
      std::string verifyMsg;
      llvm::raw_string_ostream vos(verifyMsg);
      if (llvm::verifyModule(*M, &vos)) {
        vos.flush();
        py::gil_scoped_acquire acquire;
        throw py::value_error("module fails verification: " + verifyMsg);
      }
    }
    return std::make_unique<EngineModule>(ctx, std::move(M), hadDebug);
  }

  // A copy that behaves exactly like the original under any pass sequence:
  // llvm::CloneModule does not keep use-list orders, and passes visit users and
  // predecessors in that order, so a fork could diverge from its parent under the
  // same actions (e.g. 242 vs 241 instructions). We restore the orders after cloning.
  std::unique_ptr<EngineModule> clone() const {
    llvm::ValueToValueMapTy vmap;
    std::unique_ptr<llvm::Module> copy = llvm::CloneModule(*module_, vmap);
    copyUseListOrders(vmap);
    return std::make_unique<EngineModule>(ctx_, std::move(copy), hadDebugInfo_);
  }

  bool apply(const std::string &pipeline, const std::vector<std::string> &options) {
    py::gil_scoped_release release;
    ScopedOptions scoped(options);
    return runPipeline(*module_, pipeline);
  }

  int64_t instructionCount() const { return static_cast<int64_t>(module_->getInstructionCount()); }

  py::array_t<int64_t> autophase() const { return toNumpy(computeAutophase(*module_)); }
  py::array_t<int64_t> instcount() const { return toNumpy(computeInstCount(*module_)); }

  py::bytes bitcode() const {
    std::string out;
    llvm::raw_string_ostream os(out);
    llvm::WriteBitcodeToFile(*module_, os);
    os.flush();
    return py::bytes(out);
  }

  std::string ir() const {
    std::string out;
    llvm::raw_string_ostream os(out);
    module_->print(os, nullptr);
    os.flush();
    return out;
  }

  std::string verify() const {
    std::string msg;
    llvm::raw_string_ostream os(msg);
    llvm::verifyModule(*module_, &os);
    os.flush();
    return msg;
  }

  // Size of the executable sections of an object file emitted in memory, like
  // `llc -filetype=obj` followed by llvm-size's text column.
  int64_t objectTextSize(int optLevel) const {
    std::unique_ptr<llvm::Module> copy = llvm::CloneModule(*module_);
    std::string triple = effectiveTriple(*copy);
    llvm::TargetMachine *tm = targetMachineFor(triple);
    if (!tm) throw py::value_error("no LLVM target available for triple '" + triple + "'");
    llvm::SmallVector<char, 0> buffer;
    {
      py::gil_scoped_release release;
      llvm::CodeGenOptLevel level = optLevel <= 0   ? llvm::CodeGenOptLevel::None
                                    : optLevel == 1 ? llvm::CodeGenOptLevel::Less
                                    : optLevel == 2 ? llvm::CodeGenOptLevel::Default
                                                    : llvm::CodeGenOptLevel::Aggressive;
      tm->setOptLevel(level);
      copy->setDataLayout(tm->createDataLayout());
      llvm::raw_svector_ostream os(buffer);
      llvm::legacy::PassManager pm;
      if (tm->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile)) {
        py::gil_scoped_acquire acquire;
        throw py::value_error("target cannot emit an object file for '" + triple + "'");
      }
      pm.run(*copy);
    }
    llvm::StringRef bytes(buffer.data(), buffer.size());
    auto obj = llvm::object::ObjectFile::createObjectFile(llvm::MemoryBufferRef(bytes, "object"));
    if (!obj) throw py::value_error("could not read emitted object: " + errorToString(obj.takeError()));
    int64_t total = 0;
    for (const llvm::object::SectionRef &section : (*obj)->sections())
      if (section.isText()) total += static_cast<int64_t>(section.getSize());
    return total;
  }

  std::string triple() const { return effectiveTriple(*module_); }
  bool hadDebugInfo() const { return hadDebugInfo_; }
  int64_t numFunctions() const { return static_cast<int64_t>(module_->size()); }
  int64_t numDefinedFunctions() const {
    int64_t n = 0;
    for (const llvm::Function &F : *module_)
      if (!F.isDeclaration()) ++n;
    return n;
  }

 private:
  std::shared_ptr<llvm::LLVMContext> ctx_;
  std::unique_ptr<llvm::Module> module_;
  bool hadDebugInfo_;
};

}  // namespace

PYBIND11_MODULE(_engine, m) {
  m.doc() = "compilerdream native LLVM engine";
  m.attr("LLVM_VERSION") = LLVM_VERSION_STRING;
  m.attr("NUM_AUTOPHASE") = kNumAutophase;
  m.attr("NUM_INSTCOUNT") = kNumInstCount;
  m.def("canonical_pipeline", &canonicalPipeline, py::arg("pipeline"),
        "The module-level textual pipeline LLVM prints for `pipeline` (raises ValueError if it does not parse).");
  m.def("host_triple", [] { return llvm::sys::getDefaultTargetTriple(); });

  py::class_<EngineModule>(m, "Module")
      .def_static("load", &EngineModule::load, py::arg("data"), py::arg("name") = "<module>",
                  py::arg("strip") = true,
                  "Parse LLVM bitcode or textual IR; strips debug info and named metadata like CompilerGym.")
      .def("clone", &EngineModule::clone)
      .def("apply", &EngineModule::apply, py::arg("pipeline"), py::arg("options") = std::vector<std::string>{},
           "Run a new-pass-manager pipeline in place, with opt's command-line `options` (e.g. "
           "['-force-attribute=minsize']) set for this run only; returns whether some pass reported a change.")
      .def("instruction_count", &EngineModule::instructionCount)
      .def("autophase", &EngineModule::autophase)
      .def("instcount", &EngineModule::instcount)
      .def("bitcode", &EngineModule::bitcode)
      .def("ir", &EngineModule::ir)
      .def("verify", &EngineModule::verify, "Empty string when the module verifies, else the verifier's message.")
      .def("object_text_size", &EngineModule::objectTextSize, py::arg("opt_level") = 2)
      .def_property_readonly("triple", &EngineModule::triple)
      .def_property_readonly("had_debug_info", &EngineModule::hadDebugInfo)
      .def_property_readonly("num_functions", &EngineModule::numFunctions)
      .def_property_readonly("num_defined_functions", &EngineModule::numDefinedFunctions);
}
