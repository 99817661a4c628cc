"""Trained models from the files `attn train` writes: a sequence-to-sequence
model (Translator) translates texts as `attn translate` does, a language model
(LanguageModel) continues a prompt as `attn generate` does, token for token.

    with attn.models.load("dates.safetensors") as model:
        model.translate("Nov 24, 2026")                 # '2026-11-24'
    with attn.models.LanguageModel("text.safetensors") as lm:
        lm.generate("The ", 50, temperature=0.8, seed=1)
        for piece in lm.stream("The ", 50):
            print(piece, end="", flush=True)

A model file is an attn checkpoint (attn/checkpoint.h), a safetensors file whose
metadata says what it holds (attn/model_file.h): "attn.kind", the model's config
as JSON, its vocabulary and the steps it was trained. The library reads and
checks it as the tool does (attn_seq2seq_from_file, attn_gpt_from_file), checks
the file's checksum and loads the tensors; its messages are the exceptions'
(prefixed with the file's path).

A model is used by one call at a time (its C object keeps the state of the run
in progress): a second call while one runs (from another thread, or while a
stream is open) raises RuntimeError. Close a model (close(), or a with block) to
free its memory at once."""
import codecs
import contextlib
import ctypes
import os
import queue
import threading

import numpy as np

from . import _arrays, records
from ._lib import AttnError, AttnValueError, check, check_sizes, declare, lib

_byref = ctypes.byref
_i32_p = ctypes.POINTER(ctypes.c_int32)

# ---- the C structs, field for field as in include/attn/ ----


class _Seq2seqConfig(ctypes.Structure):  # attn_seq2seq_config
    _fields_ = [("arch", ctypes.c_int), ("attention", ctypes.c_int),
                ("src_vocab", ctypes.c_int), ("tgt_vocab", ctypes.c_int),
                ("max_src_len", ctypes.c_int), ("max_tgt_len", ctypes.c_int),
                ("embed_dim", ctypes.c_int), ("hidden_dim", ctypes.c_int),
                ("enc_layers", ctypes.c_int), ("dec_layers", ctypes.c_int),
                ("heads", ctypes.c_int), ("ff_dim", ctypes.c_int), ("dropout", ctypes.c_float),
                ("entropy_weight", ctypes.c_float), ("baseline_decay", ctypes.c_float),
                ("gumbel_tau_start", ctypes.c_float), ("gumbel_tau_end", ctypes.c_float),
                ("gumbel_anneal_steps", ctypes.c_int64)]


class _GptConfig(ctypes.Structure):  # attn_gpt_config
    _fields_ = [("vocab_size", ctypes.c_int), ("block_size", ctypes.c_int),
                ("n_layer", ctypes.c_int), ("n_head", ctypes.c_int), ("n_kv_head", ctypes.c_int),
                ("n_embd", ctypes.c_int), ("position", ctypes.c_int),
                ("rope_theta", ctypes.c_float), ("window", ctypes.c_int), ("bias", ctypes.c_bool),
                ("tie_weights", ctypes.c_bool), ("dropout", ctypes.c_float)]


class _Vocab(ctypes.Structure):  # attn_vocab; ATTN_VOCAB_MAX characters
    _fields_ = [("size", ctypes.c_int), ("chars", ctypes.c_uint32 * 512)]


class _Task(ctypes.Structure):  # attn_task
    _fields_ = [("kind", ctypes.c_int), ("src_vocab", _Vocab), ("tgt_vocab", _Vocab),
                ("max_src_len", ctypes.c_int), ("max_tgt_len", ctypes.c_int),
                ("valid_size", ctypes.c_int), ("test_size", ctypes.c_int)]


_TEXT_VOCAB_MAX = 4096  # ATTN_TEXT_VOCAB_MAX
_TEXT_CHARS, _TEXT_BYTES = 0, 1  # attn_text_unit


class _TextVocab(ctypes.Structure):  # attn_text_vocab
    _fields_ = [("unit", ctypes.c_int), ("size", ctypes.c_int),
                ("chars", ctypes.c_uint32 * _TEXT_VOCAB_MAX)]


class _DecodeOptions(ctypes.Structure):  # attn_decode_options
    _fields_ = [("beam", ctypes.c_int), ("sample_hard", ctypes.c_bool), ("seed", ctypes.c_uint64),
                ("max_len", ctypes.c_int)]


class _Sampling(ctypes.Structure):  # attn_sampling
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int),
                ("top_p", ctypes.c_float)]


_TokenCallback = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_int32, ctypes.c_void_p)


class _GenerateOptions(ctypes.Structure):  # attn_generate_options
    _fields_ = [("n_new", ctypes.c_int), ("sampling", _Sampling), ("seed", ctypes.c_uint64),
                ("use_cache", ctypes.c_bool), ("on_token", _TokenCallback),
                ("user", ctypes.c_void_p), ("precision", ctypes.c_int)]


check_sizes((_Seq2seqConfig, "attn_seq2seq_config"), (_GptConfig, "attn_gpt_config"),
            (_Vocab, "attn_vocab"), (_Task, "attn_task"), (_TextVocab, "attn_text_vocab"),
            (_DecodeOptions, "attn_decode_options"),
            (_Sampling, "attn_sampling"), (_GenerateOptions, "attn_generate_options"))

_p = ctypes.POINTER
_vp, _cp = ctypes.c_void_p, ctypes.c_char_p
_st_open = declare("attn_safetensors_open", _p(_vp), _cp)
_st_close = declare("attn_safetensors_close", _vp, restype=None)
_st_metadata = declare("attn_safetensors_metadata", _vp, _cp, restype=_cp)
_checkpoint_load = declare("attn_checkpoint_load", _vp, _vp, _vp, _vp)
_model_file_step = declare("attn_model_file_step", _vp, _p(ctypes.c_int64))

_vocab_encode = declare("attn_vocab_encode", _p(_Vocab), _cp, _i32_p, ctypes.c_int,
                        _p(ctypes.c_int))
_vocab_decode = declare("attn_vocab_decode", _p(_Vocab), _i32_p, ctypes.c_int, _cp,
                        ctypes.c_size_t)
_s2s_from_file = declare("attn_seq2seq_from_file", _p(_vp), _p(_Task), _vp)
_arch_name = declare("attn_seq2seq_arch_name", ctypes.c_int, restype=_cp)
_attention_name = declare("attn_attention_kind_name", ctypes.c_int, restype=_cp)
_s2s_get_config = declare("attn_seq2seq_get_config", _vp, restype=_p(_Seq2seqConfig))
_s2s_free = declare("attn_seq2seq_free", _vp, restype=None)
_s2s_params = declare("attn_seq2seq_params", _vp, restype=_vp)
_s2s_buffers = declare("attn_seq2seq_buffers", _vp, restype=_vp)
_s2s_decode = declare("attn_seq2seq_decode", _vp, _i32_p, _i32_p, _p(ctypes.c_float), _i32_p,
                      _i32_p, ctypes.c_int, ctypes.c_int, _p(_DecodeOptions))
_s2s_decode_record = declare("attn_seq2seq_decode_record", _vp, _i32_p, _i32_p, _i32_p,
                             ctypes.c_int, ctypes.c_int, _p(_DecodeOptions),
                             _p(records._Record), _p(records._Options))

_unit_name = declare("attn_text_unit_name", ctypes.c_int, restype=_cp)
_text_encode = declare("attn_text_encode", _p(_TextVocab), _cp, ctypes.c_size_t, _i32_p,
                       ctypes.c_size_t, _p(ctypes.c_size_t))
_text_decode = declare("attn_text_decode", _p(_TextVocab), _i32_p, ctypes.c_size_t, _cp,
                       ctypes.c_size_t, _p(ctypes.c_size_t))
_gpt_from_file = declare("attn_gpt_from_file", _p(_vp), _p(_TextVocab), _vp)
_position_name = declare("attn_position_name", ctypes.c_int, restype=_cp)
_gpt_get_config = declare("attn_gpt_get_config", _vp, restype=_p(_GptConfig))
_gpt_free = declare("attn_gpt_free", _vp, restype=None)
_gpt_params = declare("attn_gpt_params", _vp, restype=_vp)
_gpt_generate = declare("attn_gpt_generate", _vp, _i32_p, _p(ctypes.c_int), _i32_p,
                        ctypes.c_int, _p(_GenerateOptions))
_gpt_record = declare("attn_gpt_record", _vp, _i32_p, ctypes.c_int, _p(ctypes.c_float),
                      _p(records._Record), _p(records._Options))

_MALFORMED = lib.attn_status_string(4).decode()  # ATTN_ERR_FORMAT's name
_INT32_MAX = 2**31 - 1


# ---- arguments ----


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    return float(value)


def _text(name, value):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is empty")
    return value


# ---- the model file ----


def _config_dict(cfg, names):
    """A model's config (a ctypes struct the library filled from the file) as a
    dict of its fields: the enums by name (names: field -> the library's name
    function), floats as the shortest decimal of their float32 value (0.1, not
    0.10000000149011612)."""
    config = {}
    for field, ctype in cfg._fields_:
        value = getattr(cfg, field)
        if field in names:
            value = names[field](value).decode()
        elif ctype is ctypes.c_float:
            value = float(str(np.float32(value)))
        config[field] = value
    return config



class _Checkpoint:
    """An attn checkpoint, open: attn_safetensors_open maps it and checks its
    checksum. Its metadata is read by key; fail() raises for what is wrong
    with it, naming the file, and about() names the file in the library's
    failures."""

    def __init__(self, path):
        self.path = os.fsdecode(path)  # a TypeError for what is no path
        self.handle = ctypes.c_void_p()
        check(_st_open(_byref(self.handle), os.fsencode(path)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _st_close(self.handle)

    def fail(self, message):
        raise AttnValueError(f"{self.path}: {message}", _MALFORMED)

    @contextlib.contextmanager
    def about(self, what):
        """Prefixes the library's failures with the file and what was read."""
        try:
            yield
        except AttnError as e:
            raise type(e)(f"{self.path}: {what}{e}", e.status) from None

    def text(self, key):
        value = _st_metadata(self.handle, key.encode())
        return None if value is None else value.decode()

    def kind(self):
        kind = self.text("attn.kind")
        if kind is None:
            self.fail("not an attn model file (no 'attn.kind' in its metadata)")
        return kind


class _Model:
    """What both kinds share: loading (the kind, the model by the library's
    reader, the step, then the tensors), the C object's lifetime, and one call
    at a time."""

    # A kind's "attn.kind", its C free function, its reader (attn_*_from_file)
    # and the struct the reader fills beside the model (its task or vocabulary).
    _kind = _free = _from_file = _Info = None

    def __init__(self, path):
        self._handle = None
        self._lock = threading.Lock()
        with _Checkpoint(path) as f:
            # Another kind named here is refused with the class to use; the
            # library's reader refuses a file that names none.
            kind = f.text("attn.kind")
            if kind is not None and kind != self._kind:
                f.fail(self._wrong_kind(kind))
            handle, info, step = ctypes.c_void_p(), self._Info(), ctypes.c_int64()
            with f.about(""):
                check(type(self)._from_file(_byref(handle), _byref(info), f.handle))
            self._handle = handle.value
            try:
                with f.about(""):
                    check(_model_file_step(f.handle, _byref(step)))
                    check(_checkpoint_load(f.handle, *self._tensors()))
            except AttnError:
                self.close()
                raise
            self.step = step.value
            self._created(f, info)

    def close(self):
        """Frees the model; later calls raise ValueError."""
        with self._use(closing=True):
            if self._handle:
                type(self)._free(self._handle)
                self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            type(self)._free(self._handle)

    @contextlib.contextmanager
    def _use(self, closing=False):
        """Holds the model for one call (the C model is not for two at once)."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("the model is in use by another call (another thread, or an "
                               "open stream: close it first)")
        try:
            if not self._handle and not closing:
                raise ValueError("the model is closed")
            yield self._handle
        finally:
            self._lock.release()


class Translator(_Model):
    """A sequence-to-sequence model (attn train --task dates, reverse, sort,
    copy) from its file: Translator(path).

    task: the task's name; config: the model's config (a dict of
    attn_seq2seq_config's fields, enums by name); step: the training steps it
    had."""

    _kind, _free, _from_file, _Info = "seq2seq", _s2s_free, _s2s_from_file, _Task

    def _wrong_kind(self, kind):
        if kind == "gpt":
            return "a language model, not a sequence-to-sequence one; use LanguageModel"
        return f"is an attn '{kind}' file, not a sequence-to-sequence model"

    def _created(self, f, task):
        """The task (the library checked that the file's vocabularies and lengths
        are its) and the config."""
        self._task = task
        self._cfg = _Seq2seqConfig.from_buffer_copy(_s2s_get_config(self._handle).contents)
        self.task = f.text("task")  # a task's name: the library parsed it
        self.config = _config_dict(self._cfg, {"arch": _arch_name, "attention": _attention_name})

    def _tensors(self):
        return _s2s_params(self._handle), _s2s_buffers(self._handle), None

    def _encode(self, text):
        """The source ids of text, (max_src_len) padded with PAD (0), and their count."""
        _text("text", text)
        if "\0" in text:
            raise ValueError("text holds a NUL character")
        S = self._cfg.max_src_len
        src, n = (ctypes.c_int32 * S)(), ctypes.c_int()
        check(_vocab_encode(_byref(self._task.src_vocab), text.encode(), src, S, _byref(n)))
        return src, n.value

    def _options(self, beam, sample, seed):
        return _DecodeOptions(beam=_arrays.integer("beam", beam, 1, 64), sample_hard=bool(sample),
                              seed=_arrays.integer("seed", seed, 0, 2**64 - 1),
                              max_len=self._cfg.max_tgt_len)

    def _output(self, out, n):
        """The text of out's first n ids, and the label of each of them."""
        text = ctypes.create_string_buffer(4 * n + 1)
        check(_vocab_decode(_byref(self._task.tgt_vocab), out, n, text, len(text)))
        return text.value.decode(), [chr(self._task.tgt_vocab.chars[i]) for i in out[:n]]

    def _steps(self, n):
        """The output steps of an output of n tokens: EOS is one, unless max_len
        ended the output first."""
        return n + 1 if n < self._cfg.max_tgt_len else n

    def translate(self, texts, beam=1, sample=False, seed=1, attention=False):
        """The translation of texts, a str (-> a str) or a list of str (-> a
        list), as `attn translate --model FILE [--beam N] TEXT...` prints them.

        beam: the beam width (1: greedy). sample and seed: hard attention draws
        the position it attends to (with seed) instead of taking the likeliest.
        With attention, returns (outputs, weights): weights for each text an array
        (steps, len(text)) float32, row i the weights output step i gave the
        source's characters (steps: the output's characters and EOS)."""
        single = isinstance(texts, str)
        if not single and not isinstance(texts, (list, tuple)):
            raise TypeError(f"texts must be a str or a list of str, not {type(texts).__name__}")
        opt = self._options(beam, sample, seed)
        S, max_len = self._cfg.max_src_len, self._cfg.max_tgt_len
        out, out_len = (ctypes.c_int32 * max_len)(), ctypes.c_int32()
        weights = np.zeros((max_len, S), np.float32)
        weights_p = weights.ctypes.data_as(_p(ctypes.c_float))
        outputs, maps = [], []
        with self._use() as m:
            for text in [texts] if single else texts:
                src, n = self._encode(text)
                length = ctypes.c_int32(n)
                check(_s2s_decode(m, out, _byref(out_len), weights_p, src, _byref(length), 1, S,
                                  _byref(opt)))
                outputs.append(self._output(out, out_len.value)[0])
                maps.append(weights[:self._steps(out_len.value), :n].copy())
        if single:
            outputs, maps = outputs[0], maps[0]
        return (outputs, maps) if attention else outputs

    def record(self, text, sample=False, seed=1, qk=False, gradient=False, gradient_step=None):
        """Every attention map the model uses translating text (greedily), as a
        records.Record, what `attn translate --attention FILE TEXT` writes: the
        RNN decoders' "decoder.attention", or the transformer's self- and cross-
        attention of every layer and head. Queries: the output's characters and
        "</s>" for EOS; keys: the text's characters. qk adds each map's q and k
        (not for Bahdanau's scores); gradient adds d log p / d weights (soft
        attention), log p the output's (the sum over its steps) or, with
        gradient_step, that step's alone (see attn/seq2seq.h)."""
        extras = records._options(qk, gradient, gradient_step)
        opt = self._options(1, sample, seed)
        src, n = self._encode(text)
        out, out_len = (ctypes.c_int32 * opt.max_len)(), ctypes.c_int32()
        with self._use() as m, records._c_record(self.config["arch"], self.task) as r:
            check(_s2s_decode_record(m, out, _byref(out_len), src, len(src), n, _byref(opt),
                                     _byref(r), extras))
            labels = self._output(out, out_len.value)[1] + ["</s>"]
            keys = [chr(self._task.src_vocab.chars[i]) for i in src[:n]]
            records._set_tokens(r, labels[:self._steps(out_len.value)], keys)
            return records._copy(r)


class LanguageModel(_Model):
    """A language model (attn train --task text) from its file:
    LanguageModel(path).

    config: the model's config (a dict of attn_gpt_config's fields, the
    positions by name); unit: "chars" or "bytes", what a token is; step: the
    training steps it had."""

    _kind, _free, _from_file, _Info = "gpt", _gpt_free, _gpt_from_file, _TextVocab

    def _wrong_kind(self, kind):
        if kind == "seq2seq":
            return "a sequence-to-sequence model, not a language model; use Translator"
        return f"is an attn '{kind}' file, not a language model"

    def _created(self, f, vocab):
        """The vocabulary and the config."""
        self._vocab = vocab
        cfg = _gpt_get_config(self._handle).contents
        self._block_size = cfg.block_size
        self.unit = _unit_name(self._vocab.unit).decode()
        self.config = _config_dict(cfg, {"position": _position_name})

    def _tensors(self):
        return _gpt_params(self._handle), None, None

    def _encode(self, text, name):
        """The ids of text (the argument `name`), a list."""
        data = _text(name, text).encode()
        ids, n = (ctypes.c_int32 * len(data))(), ctypes.c_size_t()
        check(_text_encode(_byref(self._vocab), data, len(data), ids, len(data), _byref(n)))
        return ids[:n.value]

    def _bytes(self, ids):
        """What the ids stand for: UTF-8 for chars, the raw bytes for bytes."""
        array = (ctypes.c_int32 * len(ids))(*ids)
        out, n = ctypes.create_string_buffer(4 * len(ids) + 1), ctypes.c_size_t()
        check(_text_decode(_byref(self._vocab), array, len(ids), out, len(out), _byref(n)))
        return out.raw[:n.value]

    def _generation(self, prompt, tokens, temperature, top_k, top_p, seed, use_cache):
        """The context (the prompt's last block_size ids, as attn generate cuts a
        long one) and the options of a generation."""
        ids = self._encode(prompt, "prompt")[-self._block_size:]
        sampling = _Sampling(temperature=_number("temperature", temperature),
                             top_k=_arrays.integer("top_k", top_k, 0, _INT32_MAX),
                             top_p=_number("top_p", top_p))
        options = _GenerateOptions(n_new=_arrays.integer("tokens", tokens, 1, _INT32_MAX),
                                   sampling=sampling, seed=_arrays.integer("seed", seed, 0, 2**64 - 1),
                                   use_cache=bool(use_cache))
        return (ctypes.c_int32 * len(ids))(*ids), options

    def generate(self, prompt, tokens, temperature=0.8, top_k=0, top_p=1.0, seed=1,
                 use_cache=True):
        """The text that follows prompt, `tokens` tokens of it, as `attn generate
        --prompt PROMPT --tokens N` draws it with the same options (its defaults
        are these) and prints it after the prompt.

        temperature: 0 takes the likeliest token, else the logits are divided by
        it; top_k: draw from the k likeliest only (0: all); top_p: from the fewest
        likeliest whose probability reaches it (1: all); seed: token i is drawn
        with the i-th number of its stream; use_cache False reruns the context for
        each token. A prompt longer than the block size is cut to its last block
        of tokens. Bytes a bytes model draws that are no UTF-8 read as U+FFFD."""
        context, options = self._generation(prompt, tokens, temperature, top_k, top_p, seed,
                                            use_cache)
        out, produced = (ctypes.c_int32 * options.n_new)(), ctypes.c_int()
        with self._use() as m:
            check(_gpt_generate(m, out, _byref(produced), context, len(context),
                                _byref(options)))
        return self._bytes(out[:produced.value]).decode(errors="replace")

    def stream(self, prompt, tokens, temperature=0.8, top_k=0, top_p=1.0, seed=1,
               use_cache=True):
        """A generator of the text generate() returns, piece by piece as each
        token is drawn (a piece is a token's character; a bytes model's piece is a
        whole character, once its last byte is drawn). The next token is drawn
        only when the next piece is asked for, and closing the generator (or
        leaving the loop, and dropping it) stops the generation there."""
        context, options = self._generation(prompt, tokens, temperature, top_k, top_p, seed,
                                            use_cache)
        return self._pieces(context, options)

    def _pieces(self, context, options):
        # The library calls on_token in the thread that generates, one token at a
        # time, and cannot be suspended: it runs in a thread of its own, and each
        # call waits for the reader to ask for the next piece (True) or stop (False).
        drawn, answers, failed = queue.Queue(), queue.Queue(), []
        done = object()
        out = (ctypes.c_int32 * options.n_new)()  # the library writes the tokens here too

        def on_token(token, _user):
            drawn.put(token)
            return answers.get()

        def run(model):
            try:  # the library's message is per thread: check() it here
                check(_gpt_generate(model, out, None, context, len(context), _byref(options)))
            except AttnError as e:
                failed.append(e)
            finally:
                drawn.put(done)

        options.on_token = _TokenCallback(on_token)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with self._use() as m:
            worker = threading.Thread(target=run, args=(m,), daemon=True)
            token = None
            worker.start()
            try:
                while (token := drawn.get()) is not done:
                    piece = decoder.decode(self._bytes([token]))
                    if piece:
                        yield piece
                    answers.put(True)
            finally:
                if token is not done:  # stopped early: the callback waits for its answer
                    answers.put(False)
                    while drawn.get() is not done:
                        pass
                worker.join()
        if failed:
            raise failed[0]
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def record(self, text, qk=False, gradient=False, gradient_step=None):
        """What every head of every layer attends to reading text, (at most
        block_size tokens) from position 0: a records.Record with one self-
        attention map per layer, "transformer.h.<l>.attn", weights (heads, n, n)
        for the n tokens (0 above the diagonal), each row summing to 1. Its tokens
        are labelled as `attn generate --attention FILE` labels them. qk adds each
        map's q and k (after RoPE); gradient adds d log p / d weights, log p the
        last token's given those before it, or gradient_step's (1 .. n - 1), or
        with records.EXPLAIN_ALL the sum over tokens 1 .. n - 1 (attn/gpt.h)."""
        ids = self._encode(text, "text")
        if gradient and gradient_step is None:
            gradient_step = len(ids) - 1
        extras = records._options(qk, gradient, gradient_step)
        labels = [self._label(i) for i in ids]
        with self._use() as m, records._c_record("gpt", "text") as r:
            check(_gpt_record(m, (ctypes.c_int32 * len(ids))(*ids), len(ids), None, _byref(r),
                              extras))
            records._set_tokens(r, labels, labels)
            return records._copy(r)

    def _label(self, token):
        """A token as the tool labels it: its character, or "<0xNN>" for a byte
        that is no character by itself (and NUL), "<U+0000>" for a NUL character."""
        if self._vocab.unit == _TEXT_BYTES and (token == 0 or token >= 0x80):
            return f"<0x{token:02X}>"
        if self._vocab.unit == _TEXT_CHARS and self._vocab.chars[token] == 0:
            return "<U+0000>"
        return self._bytes([token]).decode()


def load(path):
    """The model in the attn checkpoint at path: a Translator or a LanguageModel,
    by the kind its metadata names (the file is opened twice)."""
    classes = {Translator._kind: Translator, LanguageModel._kind: LanguageModel}
    with _Checkpoint(path) as f:
        kind = f.kind()
        if kind not in classes:
            f.fail(f"is an attn '{kind}' file, not a model ({' or '.join(classes)})")
    return classes[kind](path)
