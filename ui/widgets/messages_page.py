"""The Messages page: conversations on the left, the open conversation on the right.

Everything shown comes from :class:`ui.viewmodels.messages.MessagesViewModel`. Message text is
always shown as plain text (it comes from other people). Bubbles and badges paint with palette
roles, so they follow light and dark themes; the lock is painted too, as Qt ships no lock icon
outside desktop themes.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QFont,
    QHideEvent,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.messages import ConversationItem, MessageItem, MessagesViewModel

BUBBLE_SHARE = 0.75  # of the message area's width
MAX_COMPOSER_LINES = 5


def _small(label: QLabel) -> QLabel:
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.85)
    label.setFont(font)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def _plain(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def lock_pixmap(widget: QWidget) -> QPixmap:
    """A padlock the height of a line of text, in the widget's text colour."""
    size = widget.fontMetrics().height()
    ratio = widget.devicePixelRatioF()
    pixmap = QPixmap(round(size * ratio), round(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    colour = widget.palette().color(QPalette.ColorRole.WindowText)
    painter.setPen(QPen(colour, max(1.0, size / 9)))
    shackle = QRectF(size * 0.3, size * 0.08, size * 0.4, size * 0.5)
    painter.drawArc(shackle, 0, 180 * 16)
    painter.drawLine(QPointF(shackle.left(), size * 0.33), QPointF(shackle.left(), size * 0.45))
    painter.drawLine(QPointF(shackle.right(), size * 0.33), QPointF(shackle.right(), size * 0.45))
    painter.setBrush(colour)
    painter.drawRoundedRect(QRectF(size * 0.18, size * 0.45, size * 0.64, size * 0.47), 2, 2)
    painter.end()
    return pixmap


class Badge(QLabel):
    """An unread count in a filled pill."""

    def __init__(self, count: int) -> None:
        super().__init__(str(count))
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setForegroundRole(QPalette.ColorRole.HighlightedText)
        margin = self.fontMetrics().height() // 3
        self.setContentsMargins(margin, 0, margin, 0)
        self.setMinimumWidth(self.fontMetrics().height())
        self.setAccessibleName(f"{count} unread")

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.palette().color(QPalette.ColorRole.Highlight))
        radius = self.height() / 2
        painter.drawRoundedRect(QRectF(self.rect()), radius, radius)
        painter.end()
        super().paintEvent(event)


class ConversationRow(QWidget):
    """Name, time, last message and unread badge of one conversation."""

    def __init__(self, item: ConversationItem) -> None:
        super().__init__()
        self.name = _plain(item.name)
        bold = QFont(self.name.font())
        bold.setBold(item.unread > 0)
        self.name.setFont(bold)
        self.time = _small(_plain(item.time))
        self.preview = _small(_plain())
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._preview_text = item.preview or "No messages yet"
        top = QHBoxLayout()
        top.addWidget(self.name, 1)
        top.addWidget(self.time)
        bottom = QHBoxLayout()
        bottom.addWidget(self.preview, 1)
        self.badge: Badge | None = None
        if item.unread:
            self.badge = Badge(item.unread)
            bottom.addWidget(self.badge)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(bottom)

    def set_selected(self, selected: bool) -> None:
        """Draw the text in the selection's colours, as a plain list item would."""
        main = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.WindowText
        muted = (
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.PlaceholderText
        )
        self.name.setForegroundRole(main)
        self.time.setForegroundRole(muted)
        self.preview.setForegroundRole(muted)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        metrics = self.preview.fontMetrics()
        width = max(0, self.preview.width())
        self.preview.setText(
            metrics.elidedText(self._preview_text, Qt.TextElideMode.ElideRight, width)
        )


class Bubble(QLabel):
    """One message's text on a rounded background: highlighted for ours, base for theirs."""

    def __init__(self, message: MessageItem) -> None:
        super().__init__()
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setText(message.text)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setForegroundRole(
            QPalette.ColorRole.HighlightedText if message.mine else QPalette.ColorRole.Text
        )
        self._fill = QPalette.ColorRole.Highlight if message.mine else QPalette.ColorRole.Base
        pad = self.fontMetrics().height() // 2
        self.setContentsMargins(pad, pad // 2 + 1, pad, pad // 2 + 1)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)

    def natural_width(self) -> int:
        """The width the text takes unwrapped: short messages get snug bubbles, long ones
        wrap at the list's limit (QLabel alone wraps them far too early)."""
        metrics = self.fontMetrics()
        text = max(metrics.horizontalAdvance(line) for line in self.text().split("\n"))
        margins = self.contentsMargins()
        return text + margins.left() + margins.right() + 2

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.palette().color(self._fill))
        radius = self.fontMetrics().height() * 0.6
        painter.drawRoundedRect(QRectF(self.rect()), radius, radius)
        painter.end()
        super().paintEvent(event)


class MessageRow(QWidget):
    """A bubble and the line under it (time, and delivery state for ours), on its side."""

    def __init__(self, message: MessageItem) -> None:
        super().__init__()
        self.message_id = message.id
        self.mine = message.mine
        self.bubble = Bubble(message)
        self.meta = _small(_plain())
        side = Qt.AlignmentFlag.AlignRight if message.mine else Qt.AlignmentFlag.AlignLeft
        column = QVBoxLayout()
        column.setSpacing(2)
        column.addWidget(self.bubble, 0, side)
        column.addWidget(self.meta, 0, side)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        if message.mine:
            row.addStretch(1)
        row.addLayout(column)
        if not message.mine:
            row.addStretch(1)
        self.update_from(message)

    def update_from(self, message: MessageItem) -> None:
        meta = message.time
        if message.mine and message.show_state:
            meta = f"{message.time} · {message.state_label}"
        self.meta.setText(meta)
        who = "You" if message.mine else "They"
        state = f" · {message.state_label}" if message.state_label else ""
        self.bubble.setToolTip(f"{who}, {message.time}{state}")
        self.bubble.setAccessibleName(f"{who}: {message.text}")


class MessageList(QScrollArea):
    """The open conversation's messages, newest at the bottom; it follows new messages while
    the user is at the bottom and stays put while they read further up."""

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Messages")
        self.rows: list[MessageRow] = []
        self.hint = _small(_plain())
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._peer: str | None = None
        self._stick = True
        content = QWidget()
        content.setBackgroundRole(QPalette.ColorRole.Window)
        self._layout = QVBoxLayout(content)
        self._layout.addStretch(1)
        self._layout.addWidget(self.hint)
        self.setWidget(content)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._grew)

    def show_messages(self, peer: str, name: str, messages: tuple[MessageItem, ...]) -> None:
        ids = [m.id for m in messages]
        if peer != self._peer or [r.message_id for r in self.rows] != ids[: len(self.rows)]:
            self._peer = peer
            self._stick = True
            for row in self.rows:
                self._layout.removeWidget(row)
                row.hide()
                row.deleteLater()
            self.rows = []
        for message, row in zip(messages, self.rows, strict=False):
            row.update_from(message)
        for message in messages[len(self.rows) :]:
            row = MessageRow(message)
            self._fit(row)
            if message.mine:
                self._stick = True  # what the user just sent is always shown
            self._layout.addWidget(row)
            self.rows.append(row)
        self.hint.setText(f"No messages yet. Say hello to {name}.")
        self.hint.setVisible(not messages)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        for row in self.rows:
            self._fit(row)

    def _fit(self, row: MessageRow) -> None:
        widest = max(1, int(self.viewport().width() * BUBBLE_SHARE))
        row.bubble.setMaximumWidth(widest)
        row.bubble.setMinimumWidth(min(widest, row.bubble.natural_width()))

    def _scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._stick = value >= bar.maximum() - self.fontMetrics().height()

    def _grew(self, _minimum: int, maximum: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(maximum)


class Composer(QPlainTextEdit):
    """Enter sends; Shift+Enter starts a new line."""

    submitted = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setTabChangesFocus(True)
        self.setAccessibleName("Message")
        self.setPlaceholderText("Write a message")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.textChanged.connect(self._fit)
        self._fit()

    def _fit(self) -> None:
        """Two lines tall when empty, growing with the text up to five (then it scrolls)."""
        lines = min(MAX_COMPOSER_LINES, max(2, round(self.document().size().height())))
        margins = 2 * (self.frameWidth() + round(self.document().documentMargin()))
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + margins)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()  # wrapped lines change with the width

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        if enter:
            self.insertPlainText("\n")
            return
        super().keyPressEvent(event)


class ConversationView(QWidget):
    """Header with the name and the encryption note, the messages, and the composer."""

    def __init__(self) -> None:
        super().__init__()
        self.name = _plain()
        font = self.name.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.name.setFont(font)
        self.lock = QLabel()
        self.lock.setPixmap(lock_pixmap(self))
        self.lock.setAccessibleName("End-to-end encrypted")
        self.note = _small(_plain())
        self.note.setWordWrap(True)
        self.safety = _small(_plain())
        self.safety.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.safety.setAccessibleName("Safety number")
        self.messages = MessageList()
        self.composer = Composer()
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send message")
        self.send_button.setToolTip("Send (Enter). Shift+Enter starts a new line.")

        note = QVBoxLayout()
        note.setSpacing(0)
        note.addWidget(self.note)
        note.addWidget(self.safety)
        lock_row = QHBoxLayout()
        lock_row.addWidget(self.lock, 0, Qt.AlignmentFlag.AlignTop)
        lock_row.addLayout(note, 1)
        header = QVBoxLayout()
        header.addWidget(self.name)
        header.addLayout(lock_row)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        compose = QHBoxLayout()
        compose.addWidget(self.composer, 1)
        compose.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(line)
        layout.addWidget(self.messages, 1)
        layout.addLayout(compose)
        QWidget.setTabOrder(self.messages, self.composer)
        QWidget.setTabOrder(self.composer, self.send_button)


class MessagesPage(QWidget):
    """Direct messages. Reads conversations only while shown (see ``set_visible``)."""

    def __init__(self, vm: MessagesViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.list = QListWidget()
        self.list.setAccessibleName("Conversations")
        self.no_contacts = _plain("Join or create a room to message people in it.")
        self.no_contacts.setWordWrap(True)
        self.no_contacts.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.left = QStackedWidget()
        self.left.addWidget(self.no_contacts)
        self.left.addWidget(self.list)

        self.placeholder = _plain()
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.conversation = ConversationView()
        self.right = QStackedWidget()
        self.right.addWidget(self.placeholder)
        self.right.addWidget(self.conversation)
        self.error_label = _plain()
        self.error_label.setWordWrap(True)
        self.error_label.setAccessibleName("Message problem")
        self.error_label.hide()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.right, 1)
        right_layout.addWidget(self.error_label)

        splitter = QSplitter()
        splitter.addWidget(self.left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        self.left.setMinimumWidth(self.fontMetrics().averageCharWidth() * 22)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        QWidget.setTabOrder(self.list, self.conversation.messages)

        self.list.currentItemChanged.connect(self._picked)
        self.conversation.composer.submitted.connect(self.send)
        self.conversation.send_button.clicked.connect(self.send)
        self.conversation.composer.textChanged.connect(self.error_label.hide)
        vm.changed.connect(self._show_conversations)
        vm.conversationChanged.connect(self._show_conversation)
        vm.error.connect(self._show_error)
        self._show_conversations()
        self._show_conversation()

    # -- visibility -----------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.vm.set_visible(True)

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.vm.set_visible(False)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.conversation.lock.setPixmap(lock_pixmap(self.conversation))

    # -- actions --------------------------------------------------------------------------------

    def send(self) -> None:
        composer = self.conversation.composer
        if self.vm.send(composer.toPlainText()):
            composer.clear()
            self.error_label.hide()

    def _picked(self, item: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        for each, selected in ((previous, False), (item, True)):
            row = self.list.itemWidget(each) if each is not None else None
            if isinstance(row, ConversationRow):
                row.set_selected(selected)
        if item is not None:
            peer = str(item.data(Qt.ItemDataRole.UserRole))
            if peer != self.vm.selected:
                self.vm.open(peer)

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    # -- drawing --------------------------------------------------------------------------------

    def _show_conversations(self) -> None:
        self.left.setCurrentWidget(self.list if self.vm.has_contacts else self.no_contacts)
        self.placeholder.setText(
            "Choose someone on the left to read and write messages."
            if self.vm.has_contacts
            else "When you share a room with someone, you can message them here."
        )
        scrolled = self.list.verticalScrollBar().value()
        self.list.blockSignals(True)
        try:
            self.list.clear()
            for conversation in self.vm.conversations:
                item = QListWidgetItem()
                item.setData(Qt.ItemDataRole.UserRole, conversation.peer_id)
                unread = f", {conversation.unread} unread" if conversation.unread else ""
                item.setData(
                    Qt.ItemDataRole.AccessibleTextRole,
                    f"{conversation.name}{unread}. {conversation.preview}",
                )
                row = ConversationRow(conversation)
                item.setSizeHint(row.sizeHint())
                self.list.addItem(item)
                self.list.setItemWidget(item, row)
                if conversation.peer_id == self.vm.selected:
                    self.list.setCurrentItem(item)
                    row.set_selected(True)
        finally:
            self.list.blockSignals(False)
        self.list.verticalScrollBar().setValue(scrolled)

    def _show_conversation(self) -> None:
        current = self.vm.current
        if current is None:
            self.right.setCurrentWidget(self.placeholder)
            return
        view = self.conversation
        self.right.setCurrentWidget(view)
        view.name.setText(current.name)
        view.note.setText(current.encryption_note)
        if current.safety_number:
            view.safety.setText(f"Safety number: {current.safety_number}")
            tip = (
                f"Safety number: {current.safety_number}\nCompare it with {current.name}'s,"
                " in person or on a call. If they match, no one can read your messages on"
                " the way."
            )
        else:
            view.safety.setText("")
            tip = current.encryption_note
        view.safety.setVisible(bool(current.safety_number))
        for widget in (view.lock, view.note, view.safety):
            widget.setToolTip(tip)
        view.messages.show_messages(current.peer_id, current.name, current.messages)
        view.composer.setEnabled(current.can_reply)
        view.send_button.setEnabled(current.can_reply)
        view.composer.setPlaceholderText(
            f"Write to {current.name}"
            if current.can_reply
            else f"You can write to {current.name} again once you share a room."
        )
